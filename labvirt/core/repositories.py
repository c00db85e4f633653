"""Package repositories while a golden image is built: a recipe's [[package_repository]] tables.

A recipe can point the guest's package manager at other repositories for the build, e.g. the
archived CentOS 7 trees on vault.centos.org for a replica of the course's centos-7.5 image (its own
mirrorlist.centos.org entries are gone). In the recipe:

    disable_template_repositories = true   # set the template's own repositories aside while building
    keep_package_repositories = true       # (default) the ones below stay in the image

    [[package_repository]]                 # yum/dnf: /etc/yum.repos.d/labvirt-NAME.repo
    name = "c7-vault-base"
    baseurl = "https://vault.centos.org/7.5.1804/os/$basearch/"
    gpgkey = "file:///etc/pki/rpm-gpg/RPM-GPG-KEY-CentOS-7"

    [[package_repository]]                 # apt: /etc/apt/sources.list.d/labvirt-NAME.list
    name = "archive"
    type = "apt"
    uri = "http://archive.debian.org/debian"
    suite = "buster"
    components = ["main"]

How it is done, with virt-builder's own customization options (applied in command-line order, man
virt-builder "INSTALLATION PROCESS"), before its --install:
1. `disable_template_repositories`: --run-command moves the template's repository files aside, into
   /etc/yum.repos.d.labvirt-set-aside/ (apt: /etc/apt/labvirt-set-aside/); nothing is deleted;
2. --write puts one file per [[package_repository]] where the package manager reads it;
3. --install, the recipe's --run-command lines, ... use them;
4. at the end, only with `keep_package_repositories = false`: --delete removes labvirt's files and
   --run-command moves the set-aside ones back.

Why they stay by default: a lab installs more packages later (packstack pulls hundreds), from the
same repositories; a replica whose template repositories point at vanished mirrors would fail there.
The set-aside files stay in the image, so the template's original setup can be put back by hand.

Pure: validation of the recipe's tables (through labvirt.core.fields.Table) and argv/file text.
"""

from __future__ import annotations

import re
import shlex
from urllib.parse import urlsplit

from labvirt.core.fields import Table
from labvirt.core.spec import ImageSpec, PackageRepositorySpec

KINDS = ("yum", "apt")
REPO_NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")
REPO_NAME_RULE = "1-64 letters, digits, '_', '.', '-', starting with a letter or digit (it names a file)"
_APT_WORD = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.+/-]{0,63}$")
URL_RULE = ("an http://, https:// or file:/// URL without user name, password, spaces or quotes "
            "(credentials would end up in argv and in the image)")

YUM_DIR, YUM_ASIDE = "/etc/yum.repos.d", "/etc/yum.repos.d.labvirt-set-aside"
APT_DIR, APT_ASIDE = "/etc/apt", "/etc/apt/labvirt-set-aside"


# -- reading a recipe -------------------------------------------------------------------------
def _url(t: Table, key: str, required: bool = True, dollar: bool = True) -> str | None:
    text = t.str(key, required=required)
    if text is None:
        return None
    bad = not text or any(c.isspace() or c in "\"'`\\" or ord(c) < 32 for c in text) or ("$" in text and not dollar)
    try:
        parts = urlsplit(text)
    except ValueError:
        bad = True
    else:
        if "@" in parts.netloc:        # never repeat what may be a password
            t.fail(key, f"a URL with a user name or password (not shown); allowed: {URL_RULE}")
        if parts.scheme not in ("http", "https", "file"):
            bad = True
        elif parts.scheme == "file" and (parts.netloc or not parts.path.startswith("/")):
            bad = True
        elif parts.scheme != "file" and not parts.hostname:
            bad = True
    if bad:
        t.fail(key, f"got {text!r}; allowed: {URL_RULE}")
    return text


def _one(t: Table) -> PackageRepositorySpec:
    name = t.str("name", required=True, pattern=REPO_NAME_RE, rule=REPO_NAME_RULE)
    kind = t.str("type", default="yum", choices=KINDS)
    if kind == "yum":
        repo = PackageRepositorySpec(name=name, kind=kind, url=_url(t, "baseurl"),
                                     gpgcheck=t.bool("gpgcheck", default=True), gpgkey=_url(t, "gpgkey", required=False))
    else:
        suite = t.str("suite", required=True, pattern=_APT_WORD, rule="a suite name such as 'bookworm'")
        components = t.str_list("components", default=("main",))
        for c in components:
            if not _APT_WORD.match(c):
                t.fail("components", f"got {c!r}; allowed: component names such as 'main', 'contrib'")
        repo = PackageRepositorySpec(name=name, kind=kind, url=_url(t, "uri", dollar=False), suite=suite,
                                     components=tuple(components) or ("main",), trusted=t.bool("trusted", default=False))
    t.done()
    return repo


def load_repositories(t: Table) -> dict:
    """The recipe's repository fields (keyword arguments for ImageSpec); one SpecError on bad input."""
    repos = tuple(_one(rt) for rt in t.tables("package_repository"))
    disable = t.bool("disable_template_repositories", default=False)
    keep = t.bool("keep_package_repositories", default=True)
    seen: dict[str, int] = {}
    for i, repo in enumerate(repos):
        if repo.name in seen:
            t.fail(f"package_repository[{i}].name", f"{repo.name!r} is also package_repository[{seen[repo.name]}]'s "
                                                     "name; each repository needs its own (it names a file)")
        seen[repo.name] = i
    kinds = sorted({r.kind for r in repos})
    if len(kinds) > 1:
        t.fail("package_repository", f"mixes types {' and '.join(kinds)}; an image has one package manager: "
                                     "use one type in a recipe")
    if disable and not repos:
        t.fail("disable_template_repositories", "true sets the template's own repositories aside, but the recipe "
                                                "names none to use instead: add [[package_repository]] tables, or "
                                                "set it to false")
    return {"package_repositories": repos, "disable_template_repositories": disable,
            "keep_package_repositories": keep}


# -- files and virt-builder options -----------------------------------------------------------
def repository_file(repo: PackageRepositorySpec, recipe: str = "") -> tuple[str, str]:
    """(path inside the guest, content) of one repository's file."""
    origin = f"# Written by labvirt{f' for image recipe {recipe}' if recipe else ''}.\n"
    if repo.kind == "apt":
        options = " [trusted=yes]" if repo.trusted else ""
        line = f"deb{options} {repo.url} {repo.suite} {' '.join(repo.components or ('main',))}\n"
        return f"{APT_DIR}/sources.list.d/labvirt-{repo.name}.list", origin + line
    lines = [f"[{repo.name}]", f"name={repo.name}", f"baseurl={repo.url}", "enabled=1",
             f"gpgcheck={1 if repo.gpgcheck else 0}"]
    if repo.gpgkey:
        lines.append(f"gpgkey={repo.gpgkey}")
    return f"{YUM_DIR}/labvirt-{repo.name}.repo", origin + "\n".join(lines) + "\n"


def _move_all(sources: list[str], target: str) -> str:
    """A guest shell line moving whichever of `sources` (globs) exist into directory `target`."""
    q = shlex.quote(target)
    return (f"mkdir -p {q} && for f in {' '.join(sources)}; do "
            f"if [ -e \"$f\" ]; then mv \"$f\" {q}/; fi; done")


def _set_aside(kind: str) -> list[str]:
    if kind == "apt":
        return [_move_all([f"{APT_DIR}/sources.list"], APT_ASIDE),
                _move_all([f"{APT_DIR}/sources.list.d/*.list", f"{APT_DIR}/sources.list.d/*.sources"],
                          f"{APT_ASIDE}/sources.list.d")]
    return [_move_all([f"{YUM_DIR}/*.repo"], YUM_ASIDE)]


def _put_back(kind: str) -> list[str]:
    if kind == "apt":
        return [_move_all([f"{APT_ASIDE}/sources.list.d/*"], f"{APT_DIR}/sources.list.d")
                + f" && rmdir {APT_ASIDE}/sources.list.d",
                _move_all([f"{APT_ASIDE}/sources.list"], APT_DIR) + f" && rmdir {APT_ASIDE}"]
    return [_move_all([f"{YUM_ASIDE}/*"], YUM_DIR) + f" && rmdir {YUM_ASIDE}"]


def before_install(image: ImageSpec) -> list[str]:
    """virt-builder/virt-customize options that must come before --install: set the template's
    repositories aside (when asked), then write the recipe's."""
    if not image.package_repositories:
        return []
    opts: list[str] = []
    if image.disable_template_repositories:
        for command in _set_aside(image.package_repositories[0].kind):
            opts += ["--run-command", command]
    for repo in image.package_repositories:
        path, content = repository_file(repo, image.name)
        opts += ["--write", f"{path}:{content}"]
    return opts


def at_the_end(image: ImageSpec) -> list[str]:
    """Options after every other customization: with keep_package_repositories = false, remove the
    recipe's repository files and put the template's back."""
    if not image.package_repositories or image.keep_package_repositories:
        return []
    opts: list[str] = []
    for repo in image.package_repositories:
        opts += ["--delete", repository_file(repo)[0]]
    if image.disable_template_repositories:
        for command in _put_back(image.package_repositories[0].kind):
            opts += ["--run-command", command]
    return opts
