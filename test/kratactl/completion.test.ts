// Completion scripts in step with kratactl: every command of cli.ts's table and every flag of each
// command's option table is in each script (and nothing else is), and bash's and fish's completion run
// through the real shells with guest names from a test-double agent.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { spawnSync } from 'node:child_process';
import { COMMANDS } from '../../kratactl/cli.js';
import { EQUALS_ONLY, POSITIONALS, VALUES } from '../../kratactl/commands/completion.js';
import { startFakeAgentApi, testGuest } from '../harness/agent-api.js';
import { kratactl } from '../harness/kratactl.js';

const shellAvailable = (shell: string) => !spawnSync(shell, ['-c', 'true']).error;

/** Each command's flags as typed, from its own option table: -s and --long, plus --flag=value words. */
async function expectedFlags(): Promise<Map<string, string[]>> {
  const out = new Map<string, string[]>();
  for (const [name, c] of Object.entries(COMMANDS)) {
    const words: string[] = [];
    for (const [long, spec] of Object.entries((await c.load()).options)) {
      if (spec.short) words.push(`-${spec.short}`);
      words.push(`--${long}`, ...(EQUALS_ONLY[name]?.[long] ?? []).map((v) => `--${long}=${v}`));
    }
    out.set(name, words.sort());
  }
  return out;
}

const script = async (shell: string) => {
  const r = await kratactl(['completion', shell]);
  assert.equal(r.code, 0, r.stderr);
  return r.stdout;
};

test("every script names every command and exactly each command's flags", async () => {
  const flags = await expectedFlags();
  const names = Object.keys(COMMANDS).sort();
  const bash = await script('bash');
  const flagBlock = bash.slice(bash.indexOf('if [[ $cur == -* ]]'), bash.indexOf('COMPREPLY=($(compgen -W "$words"'));
  const bashFlags = new Map(
    [...flagBlock.matchAll(/^ {4}([a-z]+)\) words='([^']*)' ;;$/gm)].map((m) => [m[1]!, m[2]!.split(' ').filter(Boolean).sort()]),
  );
  for (const [name, words] of flags) assert.deepEqual(bashFlags.get(name), words, `bash: ${name}`);
  assert.deepEqual(/compgen -W '([^']*)' -- "\$cur"\)\)\n {4}return\n {2}fi/.exec(bash)?.[1]?.split(' ').sort(), [...names, 'help'].sort());

  const zsh = await script('zsh');
  assert.match(zsh, /^#compdef kratactl\n/);
  assert.match(zsh, /compdef _kratactl kratactl\n$/);
  assert.deepEqual([...zsh.matchAll(/^ {4}'([a-z]+):/gm)].map((m) => m[1]).sort(), names);
  const zshFlags = new Map([...zsh.matchAll(/^ {4}([a-z]+)\) compadd -- (-[^;]*) ;;$/gm)].map((m) => [m[1]!, m[2]!.split(' ').sort()]));
  for (const [name, words] of flags) if (words.length) assert.deepEqual(zshFlags.get(name), words, `zsh: ${name}`);

  const fish = await script('fish');
  assert.deepEqual([...fish.matchAll(/-n __kratactl_no_command -a ([a-z]+) -d/g)].map((m) => m[1]).sort(), [...names, 'help'].sort());
  const fishFlags = new Map<string, string[]>(names.map((n) => [n, []]));
  for (const m of fish.matchAll(/^complete -c kratactl -n '__kratactl_command ([a-z]+)' (?:-s (\S) )?-l (\S+)/gm)) {
    const words = fishFlags.get(m[1]!)!;
    if (m[2]) words.push(`-${m[2]}`);
    words.push(`--${m[3]}`, ...(EQUALS_ONLY[m[1]!]?.[m[3]!] ?? []).map((v) => `--${m[3]}=${v}`));
  }
  for (const [name, words] of flags) assert.deepEqual(fishFlags.get(name)!.sort(), words, `fish: ${name}`);
});

test('the value and positional tables name only commands and flags that exist', async () => {
  const flags = await expectedFlags();
  for (const [table, entries] of Object.entries({ VALUES, EQUALS_ONLY, POSITIONALS }))
    for (const name of Object.keys(entries)) assert.ok(flags.has(name), `${table}: no command "${name}"`);
  for (const [name, values] of Object.entries({ ...VALUES }))
    for (const long of Object.keys(values)) assert.ok(flags.get(name)!.includes(`--${long}`), `VALUES: ${name} has no --${long}`);
});

test('completion refuses a shell it does not know (usage, exit 2)', async () => {
  const r = await kratactl(['completion', 'tcsh']);
  assert.equal(r.code, 2);
  assert.match(r.stderr, /^error: completion takes one shell: bash, zsh, fish\n/);
});

test('bash and fish complete commands, flags, values and guest names for real', async (t) => {
  const { socket, service, dir } = await startFakeAgentApi(t);
  await service.apply([testGuest('web'), testGuest('db')], false);
  // `kratactl` in the shells is a stub printing what `kratactl get -o name` prints for this agent.
  const names = (await kratactl(['get', '-o', 'name', '--agent', socket])).stdout;
  const bashFile = join(dir, 'kratactl.bash');
  writeFileSync(bashFile, await script('bash'));
  assert.equal(spawnSync('bash', ['-n', bashFile]).status, 0);
  const bash = (line: string) => {
    const words = line.split(' ');
    const program = `source ${bashFile}
kratactl() { [[ "$*" == "get -o name --agent ${socket}" ]] && printf ${JSON.stringify(names)}; }
COMP_WORDS=(${words.map((w) => JSON.stringify(w)).join(' ')}); COMP_CWORD=${words.length - 1}
_kratactl; printf '%s\\n' "\${COMPREPLY[@]}"`;
    const r = spawnSync('bash', ['-c', program], { encoding: 'utf8' });
    assert.equal(r.stderr, '');
    return r.stdout.trim().split('\n').filter(Boolean).sort();
  };
  assert.deepEqual(bash('kratactl de'), ['delete', 'describe', 'destroy']);
  assert.deepEqual(bash('kratactl get -o '), [
    'custom-columns-file=',
    'custom-columns=',
    'json',
    'jsonpath-file=',
    'jsonpath=',
    'name',
    'wide',
    'yaml',
  ]);
  assert.deepEqual(bash('kratactl get --w'), ['--watch']);
  assert.deepEqual(bash(`kratactl logs --agent ${socket} w`), ['web']);
  assert.deepEqual(bash(`kratactl describe --agent ${socket} `), ['db', 'guest', 'guestset', 'web']);
  assert.deepEqual(bash('kratactl run --restart O'), ['OnFailure']);
  assert.deepEqual(bash('kratactl apply --dry'), ['--dry-run', '--dry-run=client', '--dry-run=server']);
  assert.deepEqual(bash('kratactl version --c'), ['--client']);
  assert.deepEqual(bash('kratactl completion '), ['bash', 'fish', 'zsh']);
  assert.deepEqual(bash('kratactl run --name '), []);

  const zshFile = join(dir, 'kratactl.zsh');
  writeFileSync(zshFile, await script('zsh'));
  if (shellAvailable('zsh')) assert.equal(spawnSync('zsh', ['-n', zshFile]).status, 0);

  // fish is installed by scripts/install-deps; where it is missing the fish script is only checked above.
  if (!shellAvailable('fish')) return;
  const fishFile = join(dir, 'kratactl.fish');
  writeFileSync(fishFile, await script('fish'));
  assert.equal(spawnSync('fish', ['-n', fishFile]).status, 0);
  const fish = (line: string) => {
    const program = `source ${fishFile}
function kratactl; test "$argv" = "get -o name --agent ${socket}"; and printf ${JSON.stringify(names)}; end
complete -C ${JSON.stringify(line)}`;
    const r = spawnSync('fish', ['-c', program], { encoding: 'utf8' });
    assert.equal(r.stderr, '');
    return r.stdout
      .split('\n')
      .filter(Boolean)
      .map((l) => l.split('\t')[0]!)
      .sort();
  };
  assert.deepEqual(fish('kratactl de'), ['delete', 'describe', 'destroy']);
  assert.deepEqual(fish('kratactl get -o '), [
    'custom-columns-file=',
    'custom-columns=',
    'json',
    'jsonpath-file=',
    'jsonpath=',
    'name',
    'wide',
    'yaml',
  ]);
  assert.deepEqual(fish('kratactl get --w'), ['--watch']);
  assert.deepEqual(fish(`kratactl logs --agent ${socket} `), ['db', 'web']);
  assert.deepEqual(fish(`kratactl describe --agent ${socket} `), ['db', 'guest', 'guestset', 'web']);
  assert.deepEqual(fish('kratactl run --restart O'), ['OnFailure']);
  assert.deepEqual(fish('kratactl completion '), ['bash', 'fish', 'zsh']);
});
