// Small Markdown helpers for tests that keep the docs in step with the code: GitHub's heading
// anchors, and the fenced code blocks of a section.

/** The anchor GitHub gives a heading: lower case, punctuation dropped, spaces to hyphens. */
export function headingAnchor(heading: string): string {
  return heading
    .trim()
    .toLowerCase()
    .replace(/[^\p{L}\p{N}\s_-]/gu, '')
    .replace(/\s/g, '-');
}

/** Every heading anchor of a document (duplicates get -1, -2, ... as on GitHub). */
export function markdownAnchors(doc: string): Set<string> {
  const seen = new Map<string, number>();
  const out = new Set<string>();
  let inFence = false;
  for (const line of doc.split('\n')) {
    if (/^\s*```/.test(line)) inFence = !inFence;
    if (inFence) continue;
    const m = /^#{1,6}\s+(.+?)\s*#*\s*$/.exec(line);
    if (!m) continue;
    const base = headingAnchor(m[1]);
    const n = seen.get(base) ?? 0;
    seen.set(base, n + 1);
    out.add(n === 0 ? base : `${base}-${n}`);
  }
  return out;
}

export interface CodeBlock {
  /** Info string after the opening fence, e.g. "yaml". */
  lang: string;
  text: string;
}

/**
 * The body of the section that starts with the heading `title` (any level), up to the next
 * heading of the same or a higher level.
 */
export function markdownSection(doc: string, title: string): string {
  const lines = doc.split('\n');
  let start = -1;
  let level = 0;
  let inFence = false;
  for (let i = 0; i < lines.length; i++) {
    if (/^\s*```/.test(lines[i])) inFence = !inFence;
    if (inFence) continue;
    const m = /^(#{1,6})\s+(.+?)\s*$/.exec(lines[i]);
    if (!m) continue;
    if (start < 0) {
      if (m[2] === title) {
        start = i + 1;
        level = m[1].length;
      }
    } else if (m[1].length <= level) {
      return lines.slice(start, i).join('\n');
    }
  }
  if (start < 0) throw new Error(`no heading "${title}"`);
  return lines.slice(start).join('\n');
}

/** Fenced code blocks (``` with any indentation, as inside list items), indentation removed. */
export function codeBlocks(markdown: string): CodeBlock[] {
  const out: CodeBlock[] = [];
  const lines = markdown.split('\n');
  for (let i = 0; i < lines.length; i++) {
    const open = /^(\s*)```(\S*)\s*$/.exec(lines[i]);
    if (!open) continue;
    const indent = open[1].length;
    const body: string[] = [];
    let j = i + 1;
    for (; j < lines.length && !/^\s*```\s*$/.test(lines[j]); j++) body.push(lines[j].slice(Math.min(indent, lines[j].length - lines[j].trimStart().length)));
    if (j >= lines.length) throw new Error(`unclosed code block at line ${i + 1}`);
    out.push({ lang: open[2], text: `${body.join('\n')}\n` });
    i = j;
  }
  return out;
}
