"""The documentation: the mkdocs site builds strictly (every page in the nav, every link and anchor resolves), and
every relative link of README and docs/ points at a file inside the repository."""
from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
LINK = re.compile(r"\]\(([^)\s]+)\)")  # [text](target) and ![alt](target)
SKIP = {".git", "outputs", "site", "__pycache__", ".pytest_cache", "build", "dist", ".venv", "results"}
TEXT = {".py", ".md", ".yaml", ".yml", ".toml", ".txt", ".cfg", ".ini", ".sh", ""}


def broken_links(pages: list[Path], root: Path) -> list[str]:
    """'page: target' for every relative link (outside code blocks) whose file is missing or outside root."""
    bad = []
    for page in pages:
        text = re.sub(r"```.*?```", "", page.read_text(encoding="utf-8"), flags=re.S)
        for target in LINK.findall(text):
            if "://" in target or target.startswith(("#", "mailto:")):
                continue
            file = (page.parent / target.split("#")[0]).resolve()
            if not file.is_relative_to(root.resolve()) or not file.exists():
                bad.append(f"{page.relative_to(root)}: {target}")
    return bad


def test_the_site_builds_strictly(tmp_path):
    mkdocs = shutil.which("mkdocs", path=str(Path(sys.executable).parent)) or shutil.which("mkdocs")
    if mkdocs is None:
        pytest.fail("mkdocs is not installed: pip install -e '.[dev]'")
    run = subprocess.run([mkdocs, "build", "--strict", "--site-dir", str(tmp_path / "site")], cwd=ROOT,
                         capture_output=True, text=True, timeout=600, env={**os.environ, "NO_MKDOCS_2_WARNING": "1"})
    assert run.returncode == 0, run.stdout[-3000:] + run.stderr[-3000:]
    api = (tmp_path / "site" / "api" / "index.html").read_text(encoding="utf-8")
    assert all(f'id="{name}"' in api for name in ("dgnn.run", "dgnn.study.WorkQueue", "dgnn.energy.mac_joules"))


def test_every_relative_link_of_readme_and_docs_resolves_inside_the_repository():
    assert broken_links([ROOT / "README.md", *sorted((ROOT / "docs").rglob("*.md"))], ROOT) == []


def test_the_link_check_finds_missing_files_and_links_that_leave_the_repository(tmp_path):
    (tmp_path / "repo" / "docs").mkdir(parents=True)
    (tmp_path / "outside.md").write_text("x")
    (tmp_path / "repo" / "docs" / "there.md").write_text("x")
    page = tmp_path / "repo" / "README.md"
    page.write_text("[ok](docs/there.md#a) [web](https://x.org) [gone](docs/gone.md) [out](../outside.md)\n"
                    "```\n[in code](nowhere.md)\n```\n")
    assert broken_links([page], tmp_path / "repo") == ["README.md: docs/gone.md", "README.md: ../outside.md"]


def test_no_file_of_the_project_points_at_the_shared_folder_outside_it():
    needle = "/".join(("..", "shared"))  # spelled in parts, so that this file does not match itself
    hits = []
    for dirpath, dirnames, filenames in os.walk(ROOT):
        dirnames[:] = [d for d in dirnames if d not in SKIP and not d.endswith(".egg-info")]
        for name in filenames:
            path = Path(dirpath) / name
            if path.suffix in TEXT:
                if needle in path.read_text(encoding="utf-8", errors="replace"):
                    hits.append(str(path.relative_to(ROOT)))
    assert hits == []
