"""`labvirt packstack answers|run`: packstack settings from the lab, and a run wrapped in snapshots."""

from __future__ import annotations

from typing import Annotated, Optional

import typer

from labvirt.cli.options import Connect, Json, LabDir, Student, default_dir

packstack_app = typer.Typer(help="Packstack around the lab: answers from the topology, runs between snapshots.",
                            no_args_is_help=True)


def register(app: typer.Typer) -> None:
    app.add_typer(packstack_app, name="packstack")


def _overrides(session) -> dict:
    from labvirt.packstack.answers import overrides, password_keys
    from labvirt.packstack.run import nova_virt_type
    from labvirt.packstack.secrets import lab_passwords

    spec, copy = session.spec, session.copy
    desired = session.desired()
    l2 = nova_virt_type(desired, session.verdict.get("l2_virt_type", "qemu"))
    passwords = lab_passwords(copy.lab, copy.student, password_keys(spec))
    return overrides(spec, desired, l2, passwords, spec.packstack.get("management_network"),
                     spec.packstack.get("provider_network"))


def _apply_to(text: str, values: dict) -> str:
    from labvirt.packstack.answers import apply_overrides, known_keys

    return apply_overrides(text, values, known_keys())


@packstack_app.command("answers")
def answers(
    apply: Annotated[Optional[str], typer.Option("--apply", metavar="FILE",
                                                 help="Apply the settings to this answer file (packstack --gen-answer-file).")] = None,
    output: Annotated[Optional[str], typer.Option("-o", "--output", metavar="FILE",
                                                  help="Write to FILE (0600, with the real passwords).")] = None,
    show_passwords: Annotated[bool, typer.Option("--show-passwords", help="Print passwords instead of ****.")] = False,
    offline: Annotated[bool, typer.Option(help="Decide the nova virt type from this machine, not the libvirt host.")] = False,
    directory: LabDir = "", connect: Connect = None, student: Student = None, json_out: Json = False,
) -> None:
    """The answer-file settings that follow from the lab (hosts, br-ex, services, passwords, virt type)."""
    import sys

    from labvirt.packstack.answers import mask
    from labvirt.driver.state_files import write_private
    from labvirt.ops.session import Session
    from labvirt.cli.output import ok, print_json

    with Session.open(directory or default_dir(), connect, student, offline=offline) as s:
        values = _overrides(s)
    if apply is not None:
        try:
            with open(apply, newline="") as f:
                text = f.read()
        except OSError as e:
            from labvirt.core.errors import LabvirtError

            raise LabvirtError(f"--apply {apply}: {e.strerror}") from None
        result = _apply_to(text, values)
        if output:
            write_private(output, result)
            ok(f"wrote {output} (0600): {len(values)} settings applied to {apply}")
        else:
            sys.stdout.write(result if show_passwords else _apply_to(text, mask(values)))
        return
    if output:
        write_private(output, "[general]\n" + "".join(f"{k}={v}\n" for k, v in values.items()))
        ok(f"wrote {output} (0600): {len(values)} settings")
        return
    shown = values if show_passwords else mask(values)
    if json_out:
        print_json(shown)
    else:
        sys.stdout.write("".join(f"{k}={v}\n" for k, v in shown.items()))


@packstack_app.command("run")
def run(
    command: Annotated[Optional[str], typer.Option(help="Run this instead of packstack over ssh (gets "
                                                        "LABVIRT_ANSWERS, LABVIRT_CONTROLLER, LABVIRT_SSH).")] = None,
    revert_on_failure: Annotated[bool, typer.Option("--revert-on-failure",
                                                    help="Revert the lab to pre-packstack when the run fails.")] = False,
    directory: LabDir = "", connect: Connect = None, student: Student = None,
) -> None:
    """Snapshot pre-packstack, run packstack on the controller (output streamed), snapshot post-packstack."""
    from labvirt.core.errors import LabvirtError
    from labvirt.packstack import run as runner
    from labvirt.ops.session import Session
    from labvirt.cli.output import err, ok

    with Session.open(directory or default_dir(), connect, student, lock=True) as s:
        if s.simulated and command is None:
            from labvirt.core.errors import UnsupportedError

            raise UnsupportedError(f"{s.uri} is simulated: there is no controller to run packstack on; "
                                   "--command CMD substitutes the remote run")
        desired = s.desired()
        values = _overrides(s)
        controller = next((d for d in desired.domains if d.role == "controller"), None)
        if controller is None:
            raise LabvirtError("the lab has no node with role 'controller'")
        address = values["CONFIG_CONTROLLER_HOST"]
        if s.simulated:
            ssh = ["ssh", f"{s.spec.ssh_user}@{address}"]     # never run: --command substitutes it
        else:
            from labvirt.ops.nodes import login

            _, options = login(s, controller.key)
            ssh = ["ssh", *options, f"{s.spec.ssh_user}@{address}"]

        def answers_of(generated: str) -> str:
            return _apply_to(generated or "[general]\n", values)

        with err().status("packstack") as status:
            def on_line(line: str) -> None:
                err().print(line, markup=False, highlight=False)

            def on_step(step: str) -> None:
                status.update(step)
                err().print(f"[bold]» {step}[/]")

            result = runner.run(s.driver, desired, s.observe(), answers_of, address, ssh, command,
                                revert_on_failure, on_line, on_step)
    if result.ok:
        ok(f"{result.message}; log {result.log}; snapshot {runner.POST} taken")
        return
    where = f" -C {directory}" if directory else ""
    who = f" --student {student}" if student else ""
    if result.reverted:
        raise LabvirtError(f"{result.message}; the lab was reverted to {runner.PRE}; log: {result.log}")
    raise LabvirtError(f"{result.message}; log: {result.log}; to go back: "
                       f"labvirt snapshot revert {runner.PRE}{where}{who}")
