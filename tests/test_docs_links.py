"""Every relative link in README.md and docs/*.md points to a file that exists and, with a
``#anchor``, to a heading of that file whose GitHub slug is the anchor."""
import re
from pathlib import Path
from urllib.parse import unquote

import pytest

REPO = Path(__file__).resolve().parents[1]
DOCS = [REPO / 'README.md', *sorted((REPO / 'docs').glob('*.md'))]

_FENCE = re.compile(r'^\s*(```|~~~)')
_HEADING = re.compile(r'^(#{1,6})\s+(.*?)\s*#*\s*$')
_LINK = re.compile(r'!?\[(?:[^\[\]]|\[[^\]]*\])*\]\(\s*<?([^)\s>]*)>?(?:\s+"[^"]*")?\s*\)')
_CODE_SPAN = re.compile(r'(`+)(.+?)\1')


def _prose_lines(text: str):
    """(line number, line) outside fenced code blocks."""
    fenced = False
    for number, line in enumerate(text.splitlines(), 1):
        if _FENCE.match(line):
            fenced = not fenced
            continue
        if not fenced:
            yield number, line


def slug(heading: str) -> str:
    """GitHub's anchor of a heading: its text without Markdown markup, lower-cased, every
    character but letters, digits, spaces, '-' and '_' dropped, spaces turned into '-'."""
    text = _CODE_SPAN.sub(lambda m: m.group(2), heading)
    text = re.sub(r'!?\[([^\]]*)\]\([^)]*\)', r'\1', text)     # [text](url) -> text
    text = re.sub(r'<[^>]+>', '', text)                          # inline HTML tags
    text = text.lower()
    text = re.sub(r'[^\w\- ]', '', text)                         # \w: letters, digits, _
    return text.replace(' ', '-')


def anchors(path: Path) -> set[str]:
    """The anchors of every heading in ``path``; a repeated slug gets -1, -2, ... as GitHub."""
    seen: dict[str, int] = {}
    out = set()
    for _, line in _prose_lines(path.read_text(encoding='utf-8')):
        if m := _HEADING.match(line):
            base = slug(m.group(2))
            count = seen.get(base, 0)
            seen[base] = count + 1
            out.add(base if count == 0 else f'{base}-{count}')
    return out


def links(path: Path):
    """(line number, target) of every Markdown link outside code blocks and code spans."""
    for number, line in _prose_lines(path.read_text(encoding='utf-8')):
        for target in _LINK.findall(_CODE_SPAN.sub('', line)):
            yield number, target


def broken_links(path: Path) -> list[str]:
    """``FILE:LINE: target: why`` for each relative link of ``path`` that leads nowhere."""
    out = []
    for number, target in links(path):
        if re.match(r'^[a-z][a-z0-9+.-]*:', target, re.I):   # https:, mailto:, ...
            continue
        file_part, _, anchor = target.partition('#')
        dest = (path.parent / unquote(file_part)).resolve() if file_part else path
        where = f'{path.relative_to(REPO) if path.is_relative_to(REPO) else path}:{number}'
        if not dest.exists():
            out.append(f'{where}: {target}: no such file')
        elif anchor and (dest.is_dir() or dest.suffix != '.md'):
            out.append(f'{where}: {target}: an anchor into a file that is not Markdown')
        elif anchor and unquote(anchor) not in anchors(dest):
            out.append(f'{where}: {target}: no heading with that anchor in {dest.name}')
    return out


@pytest.mark.parametrize('path', DOCS, ids=lambda p: str(p.relative_to(REPO)))
def test_every_relative_link_leads_to_a_file_and_heading(path):
    assert broken_links(path) == []


def test_the_docs_folder_is_linked_from_the_readme():
    targets = {t.partition('#')[0] for _, t in links(REPO / 'README.md')}
    unlinked = [p.name for p in DOCS[1:] if f'docs/{p.name}' not in targets]
    assert unlinked == [], f'docs not linked from README.md: {unlinked}'


def test_slugs_follow_github():
    assert slug("The demo's `start_iter` lever (ours)") == 'the-demos-start_iter-lever-ours'
    assert slug('Into the PyTorch a machine already has, offline too (`TORCH=system`, '
                '`WHEELHOUSE=`)') == ('into-the-pytorch-a-machine-already-has-offline-too-'
                                      'torchsystem-wheelhouse')
    assert slug('Speed: 3×3 → 7×7') == 'speed-33--77'
    assert slug('See [the table](x.md)') == 'see-the-table'


def test_a_broken_link_or_anchor_is_found(tmp_path):
    (tmp_path / 'a.md').write_text('# Title\n\n## Part\n\n## Part\n\ntext\n')
    page = tmp_path / 'b.md'
    page.write_text('# B\n\n[ok](a.md#part-1) [ok](a.md#title) [ok](#b) [web](https://x.y/z)\n'
                    '`[not a link](nowhere.md)`\n```\n[not a link](nowhere.md)\n```\n'
                    '[gone](missing.md) [bad anchor](a.md#part-2) [self](#nope)\n')
    assert [line.split(': ', 1)[1] for line in broken_links(page)] == [
        'missing.md: no such file',
        'a.md#part-2: no heading with that anchor in a.md',
        '#nope: no heading with that anchor in b.md']
