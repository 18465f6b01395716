// Compiles a C probe against the system's headers (gcc -Wall -Werror) and reads back what it prints:
// the ABI tests compare every size, offset and constant we hard-code with what the headers say.
import { execFileSync } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { Layout } from '../lib/c-layout.js';

export const layoutKey = (l: Layout): string => l.c.replace(/ /g, '_');

/** printf lines for a layout's size and each field's offset and width ("sizeof K", "offsetof K.f", "width K.f"). */
export function layoutLines(layouts: Layout[]): string[] {
  const lines: string[] = [];
  for (const l of layouts) {
    lines.push(`printf("sizeof ${layoutKey(l)} %zu\\n", sizeof(${l.c}));`);
    for (const [name, f] of Object.entries(l.fields)) {
      const member = `((${l.c} *)0)->${f.c ?? name}`;
      lines.push(`printf("offsetof ${layoutKey(l)}.${name} %zu\\n", offsetof(${l.c}, ${f.c ?? name}));`);
      lines.push(`printf("${f.type === 'bytes' ? 'sizeof' : 'width'} ${layoutKey(l)}.${name} %zu\\n", sizeof(${member}));`);
    }
  }
  return lines;
}

/** printf lines for C expressions, keyed `${prefix}${name}` with spaces made underscores. */
export function valueLines(exprs: [name: string, expr: string][], prefix = 'const '): string[] {
  return exprs.map(([name, expr]) => `printf("${prefix}${name.replace(/ /g, '_')} %llu\\n", (unsigned long long)(${expr}));`);
}

/** Builds `prelude` (includes, defines) + main() { body } with gcc, runs it, and maps each printed key to its number. */
export function runCProbe(prelude: string[], body: string[]): Map<string, number> {
  const dir = mkdtempSync(join(tmpdir(), 'krata-c-probe-'));
  try {
    writeFileSync(join(dir, 'probe.c'), [...prelude, 'int main(void) {', ...body, 'return 0; }'].join('\n'));
    execFileSync('gcc', ['-Wall', '-Werror', '-o', join(dir, 'probe'), join(dir, 'probe.c')], { stdio: ['ignore', 'ignore', 'pipe'] });
    const out = execFileSync(join(dir, 'probe'), { encoding: 'utf8' });
    return new Map(
      out
        .trim()
        .split('\n')
        .map((l) => {
          const at = l.lastIndexOf(' ');
          return [l.slice(0, at), Number(l.slice(at + 1))];
        }),
    );
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}
