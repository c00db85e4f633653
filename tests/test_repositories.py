"""Package repositories while building (core/repositories.py): the recipe syntax, the files written
into the guest, where they sit in virt-builder's argv, refusals, and the recipe hash.

Nothing here runs virt-builder: these builds need the network (vault.centos.org, CentOS Stream
mirrors), which this machine does not have. See the README's "Images" section."""

from __future__ import annotations

import os

import pytest

from labvirt.core.desired import golden_image
from labvirt.core.errors import SpecError
from labvirt.core.loader import load_lab
from labvirt.core.record import replace
from labvirt.core.repositories import at_the_end, before_install, repository_file
from labvirt.core.spec import ImageSpec, PackageRepositorySpec, spec_hash
from labvirt.driver.virt_builder import builder_argv, build_commands

from .conftest import EXAMPLES, run_cli, write_lab

GiB = 1024**3
NET = {"a": 'mode = "isolated"\nsubnet = "10.250.1.0/24"\n'}
NODE = {"alpha": 'memory = "128MiB"\nimage = "x"\n[[nic]]\nnetwork = "a"\n'}
VAULT = """
template = "centos-7.5"
disable_template_repositories = true
packages = ["cloud-init"]
[[package_repository]]
name = "c7-vault-base"
baseurl = "https://vault.centos.org/7.5.1804/os/$basearch/"
gpgkey = "file:///etc/pki/rpm-gpg/RPM-GPG-KEY-CentOS-7"
"""


def recipe(tmp_path, text: str) -> ImageSpec:
    lab = write_lab(tmp_path / "lab", "t", networks=NET, nodes=NODE, images={"x": text})
    return load_lab(lab).images[0]


def options(argv, flag):
    return [(i, argv[i + 1]) for i, a in enumerate(argv) if a == flag]


# -- the shipped recipes ----------------------------------------------------------------------
@pytest.mark.parametrize("lab", ["standard", "three-node"])
def test_the_course_replica_uses_the_vault_and_the_default_needs_no_override(lab):
    images = {i.name: i for i in load_lab(EXAMPLES[lab]).images}
    c7 = images["centos7"]
    assert c7.template == "centos-7.5" and c7.disable_template_repositories and c7.keep_package_repositories
    assert [(r.name, r.url) for r in c7.package_repositories] == [
        (f"c7-vault-{part}", f"https://vault.centos.org/7.5.1804/{part if part != 'base' else 'os'}/$basearch/")
        for part in ("base", "updates", "extras")]
    assert all(r.gpgcheck and r.gpgkey == "file:///etc/pki/rpm-gpg/RPM-GPG-KEY-CentOS-7" for r in c7.package_repositories)
    c9 = images["centos-stream9"]
    assert c9.template == "centosstream-9" and not c9.package_repositories and not c9.disable_template_repositories
    assert "centos-release-openstack-epoxy" in c9.packages and "dnf -y install openstack-packstack" in c9.run
    assert {n.image for n in load_lab(EXAMPLES[lab]).nodes} == {"centos-stream9"}


def test_the_scaffold_is_the_standard_lab():
    """`labvirt init` writes the repository's standard lab (recipes, nodes, networks, stages), named anew."""
    from labvirt import scaffold

    here = os.path.dirname(scaffold.__file__)
    root = EXAMPLES["standard"]
    for sub in ("domains", "networks", "images", "checks"):
        assert sorted(os.listdir(os.path.join(here, sub))) == sorted(os.listdir(os.path.join(root, sub)))
        for name in os.listdir(os.path.join(root, sub)):
            with open(os.path.join(here, sub, name)) as a, open(os.path.join(root, sub, name)) as b:
                assert a.read() == b.read(), f"scaffold/{sub}/{name}"
    with open(os.path.join(here, "lab.toml")) as a, open(os.path.join(root, "lab.toml")) as b:
        assert a.read() == b.read().replace('name = "openstack"', 'name = "LABNAME"')


# -- files ------------------------------------------------------------------------------------
def test_yum_repository_file():
    repo = PackageRepositorySpec(name="c7-vault-base", url="https://vault.centos.org/7.5.1804/os/$basearch/",
                                 gpgkey="file:///etc/pki/rpm-gpg/RPM-GPG-KEY-CentOS-7")
    assert repository_file(repo, "centos7") == ("/etc/yum.repos.d/labvirt-c7-vault-base.repo", (
        "# Written by labvirt for image recipe centos7.\n"
        "[c7-vault-base]\n"
        "name=c7-vault-base\n"
        "baseurl=https://vault.centos.org/7.5.1804/os/$basearch/\n"
        "enabled=1\n"
        "gpgcheck=1\n"
        "gpgkey=file:///etc/pki/rpm-gpg/RPM-GPG-KEY-CentOS-7\n"))
    unsigned = PackageRepositorySpec(name="local", url="file:///srv/repo")
    assert repository_file(unsigned)[1].endswith("baseurl=file:///srv/repo\nenabled=1\ngpgcheck=1\n")
    off = PackageRepositorySpec(name="local", url="file:///srv/repo", gpgcheck=False)
    assert "gpgcheck=0\n" in repository_file(off)[1]


def test_apt_repository_file():
    repo = PackageRepositorySpec(name="buster", kind="apt", url="http://archive.debian.org/debian", suite="buster",
                                 components=("main", "contrib"), trusted=True)
    assert repository_file(repo) == ("/etc/apt/sources.list.d/labvirt-buster.list",
                                     "# Written by labvirt.\n"
                                     "deb [trusted=yes] http://archive.debian.org/debian buster main contrib\n")
    bare = PackageRepositorySpec(name="b", kind="apt", url="http://deb.example.org/debian", suite="bookworm")
    assert repository_file(bare)[1].endswith("deb http://deb.example.org/debian bookworm main\n")   # no trailing space


# -- argv: where the options sit ---------------------------------------------------------------
def test_the_template_repositories_are_set_aside_then_ours_written_then_install(tmp_path):
    image = recipe(tmp_path, VAULT)
    argv = builder_argv(image, "o.qcow2", "/state/pw")
    (aside_at, aside), = [(i, c) for i, c in options(argv, "--run-command") if "set-aside" in c]
    assert aside == ('mkdir -p /etc/yum.repos.d.labvirt-set-aside && for f in /etc/yum.repos.d/*.repo; do '
                     'if [ -e "$f" ]; then mv "$f" /etc/yum.repos.d.labvirt-set-aside/; fi; done')
    (write_at, write), = options(argv, "--write")
    path, content = repository_file(image.package_repositories[0], "x")
    assert write == f"{path}:{content}"
    assert aside_at < write_at < argv.index("--install")
    assert "--delete" not in argv                                  # kept in the image by default
    assert [c for _, c in options(argv, "--run-command") if "set-aside" in c] == [aside]   # not put back
    # virt-customize (a local cloud image) gets the same options in the same order
    local = replace(image, template=None, source_file="/images/c7.qcow2")
    customize = build_commands(local, "o.qcow2", "/state/pw")[-1]
    assert customize.index(aside) < customize.index(f"{path}:{content}") < customize.index("--install")


def test_without_template_repositories_disabled_nothing_is_moved(tmp_path):
    image = recipe(tmp_path, VAULT.replace("disable_template_repositories = true", ""))
    assert not image.disable_template_repositories
    assert before_install(image) == ["--write", ":".join(repository_file(image.package_repositories[0], "x"))]


def test_removed_at_the_end_when_not_kept(tmp_path):
    image = recipe(tmp_path, VAULT.replace("packages =", 'run = ["yum -y install epel-release"]\n'
                                           'selinux = "permissive"\nkeep_package_repositories = false\npackages ='))
    argv = builder_argv(image, "o.qcow2", "/pw")
    (delete_at, deleted), = options(argv, "--delete")
    assert deleted == "/etc/yum.repos.d/labvirt-c7-vault-base.repo"
    (back_at, back), = [(i, c) for i, c in options(argv, "--run-command") if "set-aside/*" in c]
    assert back == ('mkdir -p /etc/yum.repos.d && for f in /etc/yum.repos.d.labvirt-set-aside/*; do '
                    'if [ -e "$f" ]; then mv "$f" /etc/yum.repos.d/; fi; done && rmdir /etc/yum.repos.d.labvirt-set-aside')
    run_at = argv.index("yum -y install epel-release")
    assert argv.index("--install") < run_at < delete_at < back_at < argv.index("--edit")   # before SELinux's edit
    assert at_the_end(image) == ["--delete", deleted, "--run-command", back]


def test_apt_set_aside_and_put_back(tmp_path):
    image = recipe(tmp_path, '''
        template = "debian-12"
        disable_template_repositories = true
        keep_package_repositories = false
        packages = ["cloud-init"]
        [[package_repository]]
        name = "mirror"
        type = "apt"
        uri = "http://deb.example.org/debian"
        suite = "bookworm"
        ''')
    assert image.package_repositories[0].components == ("main",)
    first = before_install(image)
    assert [first[i + 1] for i, a in enumerate(first) if a == "--run-command"] == [
        'mkdir -p /etc/apt/labvirt-set-aside && for f in /etc/apt/sources.list; do '
        'if [ -e "$f" ]; then mv "$f" /etc/apt/labvirt-set-aside/; fi; done',
        'mkdir -p /etc/apt/labvirt-set-aside/sources.list.d && for f in /etc/apt/sources.list.d/*.list '
        '/etc/apt/sources.list.d/*.sources; do if [ -e "$f" ]; then mv "$f" /etc/apt/labvirt-set-aside/sources.list.d/; fi; done']
    assert first[-1] == ("/etc/apt/sources.list.d/labvirt-mirror.list:# Written by labvirt for image recipe x.\n"
                         "deb http://deb.example.org/debian bookworm main\n")
    last = at_the_end(image)
    assert last[:2] == ["--delete", "/etc/apt/sources.list.d/labvirt-mirror.list"]
    assert last[3].endswith("&& rmdir /etc/apt/labvirt-set-aside/sources.list.d")
    assert last[5].endswith("/etc/apt/; fi; done && rmdir /etc/apt/labvirt-set-aside")


def test_nothing_secret_or_shell_reaches_argv(tmp_path):
    """URLs are refused when they carry credentials or quotes; what is written is the recipe's text."""
    image = recipe(tmp_path, VAULT)
    joined = "\n".join(builder_argv(image, "o", "/pw"))
    assert "@" not in joined.replace("$basearch", "")


# -- refusals ---------------------------------------------------------------------------------
BAD = [
    ("ftp URL", 'baseurl = "https://vault', 'baseurl = "ftp://vault', "package_repository[0].baseurl", "http://, https:// or file:///"),
    ("credentials", 'baseurl = "https://vault', 'baseurl = "https://me:s3cret@vault', "package_repository[0].baseurl",
     "without user name, password"),
    ("space", '/os/$basearch/"', '/os/ $basearch/"', "package_repository[0].baseurl", "allowed: an http://"),
    ("relative file URL", 'gpgkey = "file:///etc', 'gpgkey = "file:etc', "package_repository[0].gpgkey", "file:///"),
    ("no host", 'baseurl = "https://vault.centos.org', 'baseurl = "https://', "package_repository[0].baseurl", "allowed"),
    ("name with a slash", 'name = "c7-vault-base"', 'name = "../etc/passwd"', "package_repository[0].name",
     "it names a file"),
    ("missing baseurl", 'baseurl = "https://vault.centos.org/7.5.1804/os/$basearch/"\n', "",
     "package_repository[0].baseurl", "missing required field"),
    ("apt key in a yum repository", 'name = "c7-vault-base"', 'name = "c7-vault-base"\nsuite = "x"',
     "package_repository[0].suite", "unknown key"),
    ("bad type", 'name = "c7-vault-base"', 'name = "c7-vault-base"\ntype = "zypper"', "package_repository[0].type",
     "allowed: yum, apt"),
    ("gpgcheck not a boolean", 'name = "c7-vault-base"', 'name = "c7-vault-base"\ngpgcheck = "no"',
     "package_repository[0].gpgcheck", "true or false"),
    ("switch without repositories", VAULT[VAULT.index("[[package"):], "", "disable_template_repositories",
     "names none to use instead"),
    ("duplicate names", 'packages = ["cloud-init"]\n', 'packages = ["cloud-init"]\n' + VAULT[VAULT.index("[[package"):],
     "package_repository[1].name", "also package_repository[0]'s name"),
    ("mixed types", 'packages = ["cloud-init"]\n', 'packages = ["cloud-init"]\n[[package_repository]]\nname = "d"\n'
     'type = "apt"\nuri = "http://deb.example.org/debian"\nsuite = "bookworm"\n', "package_repository",
     "mixes types apt and yum"),
    ("apt URI with a variable", 'packages = ["cloud-init"]\n', 'packages = ["cloud-init"]\n[[package_repository]]\n'
     'name = "d"\ntype = "apt"\nuri = "http://deb.example.org/$x"\nsuite = "bookworm"\n',
     "package_repository[0].uri", "allowed"),
    ("bad apt component", 'packages = ["cloud-init"]\n', 'packages = ["cloud-init"]\n[[package_repository]]\n'
     'name = "d"\ntype = "apt"\nuri = "http://deb.example.org/debian"\nsuite = "bookworm"\ncomponents = ["main non"]\n',
     "package_repository[0].components", "component names"),
]


@pytest.mark.parametrize("what,old,new,field,words", BAD, ids=[b[0] for b in BAD])
def test_bad_repositories_are_refused_with_file_field_and_allowed(tmp_path, what, old, new, field, words):
    assert old in VAULT
    with pytest.raises(SpecError) as e:
        recipe(tmp_path, VAULT.replace(old, new, 1))
    assert e.value.file.endswith(os.path.join("images", "x.toml")), e.value
    assert e.value.field == field, str(e.value)
    assert words in str(e.value), str(e.value)
    assert "\n" not in str(e.value) and "s3cret" not in str(e.value)


# -- the recipe's hash: what decides a rebuild ---------------------------------------------------
def test_recipes_without_repositories_keep_their_hash():
    """Golden images built before repositories existed are still found (no rebuild, no new backing files).
    The value is spec_hash of this recipe as the code before package repositories computed it."""
    image = ImageSpec(name="c7", size=40 * GiB, template="centos-7.5", packages=("cloud-init",),
                      kernel_args=("net.ifnames=0",))
    assert spec_hash(image) == "a0e79e63430fc468"


def test_the_hash_changes_with_the_repositories_and_only_with_them(tmp_path):
    base = recipe(tmp_path / "1", VAULT)
    same = recipe(tmp_path / "2", VAULT)
    assert golden_image(base, "/img") == golden_image(same, "/img")          # an unchanged recipe: same volume
    for old, new in (("7.5.1804/os", "7.9.2009/os"), ("disable_template_repositories = true", ""),
                     ('gpgkey = "file:///etc/pki/rpm-gpg/RPM-GPG-KEY-CentOS-7"', "gpgcheck = false"),
                     ("packages =", "keep_package_repositories = false\npackages =")):
        other = recipe(tmp_path / old.replace("/", "_")[:20], VAULT.replace(old, new))
        assert golden_image(other, "/img").volume != golden_image(base, "/img").volume, (old, new)


def test_a_changed_repository_builds_a_new_image_on_the_simulator(tmp_path):
    lab = str(tmp_path / "lab")
    write_lab(lab, "t", networks=NET, nodes=NODE, images={"x": VAULT})
    assert "built (simulated)" in run_cli("image", "build", "-c", "sim", "-C", lab).stderr
    r = run_cli("image", "build", "-c", "sim", "-C", lab)
    assert r.returncode == 0 and "up to date" in r.stderr
    with open(os.path.join(lab, "images", "x.toml"), "w") as f:
        f.write(VAULT.replace("7.5.1804", "7.9.2009"))
    r = run_cli("image", "build", "-c", "sim", "-C", lab)
    assert r.returncode == 0 and "built (simulated)" in r.stderr, r.stderr
