// kratactl completion bash|zsh|fish: shell completion for commands, subcommands, flags and their values.
// The commands come from cli.ts's table and each command's flags from its own option table (the one it
// parses with), so the scripts follow both; the tables below add only what a flag's value or a
// positional completes to. Guest names are asked of the agent at completion time with
// `kratactl get -o name`, honouring -n and --agent already on the command line.
import type { FlagSpecs } from '../../lib/cli-flags.js';
import { EXIT_OK, UsageError, type IO } from '../io.js';

export const COMPLETION_HELP = `Print a shell completion script.

Usage: kratactl completion bash|zsh|fish

  bash:  source <(kratactl completion bash)       (or save it in /etc/bash_completion.d/kratactl)
  zsh:   source <(kratactl completion zsh)        (after compinit)
  fish:  kratactl completion fish | source        (or save it in ~/.config/fish/completions/kratactl.fish)
`;

export const SHELLS = ['bash', 'zsh', 'fish'] as const;

/** What completion needs of cli.ts's command table. */
export interface CompletableCommand {
  summary: string;
  load: () => Promise<{ options: FlagSpecs }>;
}

type Values = string[] | 'files';

/** What a flag's value completes to, by the flag's long name, in every command; per command below. */
const COMMON_VALUES: Record<string, Values> = {
  agent: 'files',
  filename: 'files',
  store: 'files',
  'docker-config': 'files',
  'pull-secret-file': 'files',
};

/** A flag's value per command (by long name); a flag that takes a value and is in neither table completes to nothing. */
export const VALUES: Record<string, Record<string, Values>> = {
  apply: { output: ['yaml', 'json', 'name'] },
  get: {
    output: ['wide', 'yaml', 'json', 'name', 'jsonpath=', 'jsonpath-file=', 'custom-columns=', 'custom-columns-file='],
    'field-selector': ['metadata.name=', 'metadata.namespace=', 'status.phase=', 'spec.nodeName=', 'status.node='],
    'sort-by': ['.metadata.name', '.metadata.creationTimestamp', '.status.phase', '.status.restartCount'],
  },
  wait: { for: ['condition=Ready', 'delete', 'jsonpath='] },
  events: { types: ['Normal', 'Warning'], output: ['yaml', 'json'] },
  launch: { restart: ['Never', 'OnFailure', 'Always'], kernel: 'files', initrd: 'files' },
  list: { output: ['yaml', 'json', 'name'] },
  run: { restart: ['Never', 'OnFailure', 'Always'] },
  top: { output: ['json', 'yaml'] },
  host: { output: ['yaml', 'json'] },
  image: { platform: ['linux/amd64', 'linux/arm64'], output: ['table', 'wide', 'json'] },
  version: { output: ['json', 'yaml'] },
};

/** Flags whose value only follows '=' (`--dry-run` alone is a value of its own): offered as whole words. */
export const EQUALS_ONLY: Record<string, Record<string, string[]>> = {
  apply: { 'dry-run': ['client', 'server'] },
};

/** Words offered for positionals (subcommands, kinds), and whether the agent's guest names are. */
export const POSITIONALS: Record<string, { words?: string[]; guests?: boolean }> = {
  get: { words: ['guests', 'guestsets'], guests: true },
  describe: { words: ['guest', 'guestset'], guests: true },
  delete: { words: ['guest', 'guestset'], guests: true },
  wait: { words: ['guest', 'guests', 'guestset'], guests: true },
  destroy: { guests: true },
  console: { guests: true },
  scale: { words: ['guestset'] },
  rollout: { words: ['status'] },
  logs: { guests: true },
  attach: { guests: true },
  exec: { guests: true },
  top: { guests: true },
  explain: { words: ['guest', 'xenhost', 'guestset', 'guest.spec', 'guest.status', 'xenhost.spec', 'xenhost.status', 'guestset.spec'] },
  image: { words: ['pull', 'import', 'ls', 'rm', 'prune'] },
  host: { words: ['status'] },
  completion: { words: [...SHELLS] },
};

/** One command's completion: its flags as typed (short and long, and `--flag=value` words), their values. */
export interface CommandFlags {
  flags: string[];
  /** Flags that take the next word as their value, with what it completes to ([] for nothing). */
  values: Record<string, Values>;
  /** For fish, which knows flags by their letter and name. */
  specs: { long: string; short?: string; value?: Values }[];
}

export function commandFlags(name: string, options: FlagSpecs): CommandFlags {
  const out: CommandFlags = { flags: [], values: {}, specs: [] };
  for (const [long, spec] of Object.entries(options)) {
    const equalsOnly = EQUALS_ONLY[name]?.[long];
    const words = [...(spec.short ? [`-${spec.short}`] : []), `--${long}`];
    out.flags.push(...words);
    if (equalsOnly) {
      out.flags.push(...equalsOnly.map((v) => `--${long}=${v}`));
      out.specs.push({ long });
      continue;
    }
    const value = spec.type === 'string' ? (VALUES[name]?.[long] ?? COMMON_VALUES[long] ?? []) : undefined;
    if (value) for (const w of words) out.values[w] = value;
    out.specs.push({ long, ...(spec.short && { short: spec.short }), ...(value && { value }) });
  }
  return out;
}

const shellWords = (words: string[]) => words.join(' ');
const quoteSingle = (s: string) => `'${s.replace(/'/g, `'\\''`)}'`;

type Table = [name: string, summary: string, flags: CommandFlags][];

/** The `case` arms that complete a flag's value, shared by bash and zsh (their case syntax is the same). */
function valueArms(table: Table, file: string, list: (words: string[]) => string, none: string): string {
  const arms: string[] = [];
  for (const [cmd, , f] of table) {
    for (const [flag, values] of Object.entries(f.values)) {
      const action = values === 'files' ? file : values.length ? list(values) : none;
      arms.push(`    ${cmd}:${flag}) ${action}; return ;;`);
    }
  }
  return arms.join('\n');
}

function bash(table: Table): string {
  const flagArms = table.map(([cmd, , f]) => `    ${cmd}) words=${quoteSingle(shellWords(f.flags))} ;;`).join('\n');
  const wordArms = Object.entries(POSITIONALS)
    .map(([cmd, s]) => `    ${cmd}) words=${quoteSingle(shellWords(s.words ?? []))}${s.guests ? '; guests=1' : ''} ;;`)
    .join('\n');
  const names = table.map(([n]) => n);
  return `# bash completion for kratactl. Load with: source <(kratactl completion bash)

# Guest names from the node agent, in the namespace and at the socket given on the command line.
_kratactl_guests() {
  local i args=()
  for ((i = 2; i < COMP_CWORD; i++)); do
    case "\${COMP_WORDS[i]}" in
      -n|--namespace|--agent) args+=("\${COMP_WORDS[i]}" "\${COMP_WORDS[i+1]}") ;;
      --namespace=*|--agent=*) args+=("\${COMP_WORDS[i]}") ;;
    esac
  done
  "\${COMP_WORDS[0]}" get -o name "\${args[@]}" 2>/dev/null | sed 's|.*/||'
}

_kratactl() {
  local cur="\${COMP_WORDS[COMP_CWORD]}" prev="\${COMP_WORDS[COMP_CWORD-1]}" cmd="\${COMP_WORDS[1]}" words="" guests=0
  COMPREPLY=()
  if ((COMP_CWORD == 1)); then
    COMPREPLY=($(compgen -W ${quoteSingle(shellWords([...names, 'help']))} -- "$cur"))
    return
  fi
  case "$cmd:$prev" in
${valueArms(table, 'COMPREPLY=($(compgen -f -- "$cur"))', (w) => `COMPREPLY=($(compgen -W ${quoteSingle(shellWords(w))} -- "$cur"))`, ':')}
  esac
  if [[ $cur == -* ]]; then
    case "$cmd" in
${flagArms}
    esac
    COMPREPLY=($(compgen -W "$words" -- "$cur"))
    return
  fi
  case "$cmd" in
    help) words=${quoteSingle(shellWords(names))} ;;
${wordArms}
  esac
  if ((guests)); then words="$words $(_kratactl_guests)"; fi
  COMPREPLY=($(compgen -W "$words" -- "$cur"))
}

complete -F _kratactl kratactl
`;
}

function zsh(table: Table): string {
  const described = table.map(([name, summary]) => quoteSingle(`${name}:${summary}`));
  const flagArms = table
    .filter(([, , f]) => f.flags.length)
    .map(([cmd, , f]) => `    ${cmd}) compadd -- ${shellWords(f.flags)} ;;`)
    .join('\n');
  const wordArms = Object.entries(POSITIONALS)
    .map(([cmd, s]) => `    ${cmd}) compadd -- ${shellWords(s.words ?? [])}${s.guests ? ' $(_kratactl_guests)' : ''} ;;`)
    .join('\n');
  return `#compdef kratactl
# zsh completion for kratactl. Load with: source <(kratactl completion zsh)   (after compinit)

# Guest names from the node agent, in the namespace and at the socket given on the command line.
_kratactl_guests() {
  local -a args
  local i
  for ((i = 3; i < CURRENT; i++)); do
    case \${words[i]} in
      -n|--namespace|--agent) args+=(\${words[i]} \${words[i+1]}) ;;
      --namespace=*|--agent=*) args+=(\${words[i]}) ;;
    esac
  done
  \${words[1]} get -o name $args 2>/dev/null | sed 's|.*/||'
}

_kratactl() {
  local -a commands
  commands=(
    ${described.join('\n    ')}
  )
  if ((CURRENT == 2)); then
    _describe -t commands 'kratactl command' commands
    return
  fi
  local cmd=\${words[2]} prev=\${words[CURRENT-1]} cur=\${words[CURRENT]}
  case "$cmd:$prev" in
${valueArms(table, '_files', (w) => `compadd -- ${shellWords(w)}`, ':')}
  esac
  if [[ $cur == -* ]]; then
    case $cmd in
${flagArms}
    esac
    return
  fi
  case $cmd in
    help) compadd -- ${table.map(([n]) => n).join(' ')} ;;
${wordArms}
  esac
}

compdef _kratactl kratactl
`;
}

function fish(table: Table): string {
  const lines: string[] = [];
  for (const [name, summary] of table) lines.push(`complete -c kratactl -n __kratactl_no_command -a ${name} -d ${quoteSingle(summary)}`);
  lines.push(`complete -c kratactl -n __kratactl_no_command -a help -d 'help for a command'`);
  lines.push(`complete -c kratactl -n '__kratactl_command help' -a ${quoteSingle(shellWords(table.map(([n]) => n)))}`);
  for (const [name, , f] of table) {
    const when = `-n '__kratactl_command ${name}'`;
    for (const s of f.specs) {
      const flag = `${s.short ? `-s ${s.short} ` : ''}-l ${s.long}`;
      const value =
        s.value === undefined ? '' : s.value === 'files' ? ' -r -F' : s.value.length ? ` -x -a ${quoteSingle(shellWords(s.value))}` : ' -x';
      lines.push(`complete -c kratactl ${when} ${flag}${value}`);
    }
    const pos = POSITIONALS[name];
    if (pos?.words?.length) lines.push(`complete -c kratactl ${when} -a ${quoteSingle(shellWords(pos.words))}`);
    if (pos?.guests) lines.push(`complete -c kratactl ${when} -a '(__kratactl_guests)'`);
  }
  return `# fish completion for kratactl. Load with: kratactl completion fish | source

# No command yet: only the program's name on the line.
function __kratactl_no_command
    test (count (commandline -opc)) -eq 1
end

# The command (the word after kratactl) is $argv[1].
function __kratactl_command
    set -l words (commandline -opc)
    test (count $words) -ge 2; and test "$words[2]" = "$argv[1]"
end

# Guest names from the node agent, in the namespace and at the socket given on the command line.
function __kratactl_guests
    set -l words (commandline -opc)
    set -l args
    for i in (seq 3 (count $words))
        switch $words[$i]
            case -n --namespace --agent
                set -a args $words[$i] $words[(math $i + 1)]
            case '--namespace=*' '--agent=*'
                set -a args $words[$i]
        end
    end
    type -q $words[1]; or return
    $words[1] get -o name $args 2>/dev/null | string replace -r '.*/' ''
end

complete -c kratactl -f
${lines.join('\n')}
`;
}

/** Every command with its summary and flags, in the table's order (each command's module is loaded for its option table). */
export async function completionTable(commands: Record<string, CompletableCommand>): Promise<Table> {
  return Promise.all(
    Object.entries(commands).map(async ([name, c]): Promise<Table[number]> => [
      name,
      c.summary,
      commandFlags(name, (await c.load()).options),
    ]),
  );
}

export async function completion(argv: string[], io: IO, commands: Record<string, CompletableCommand>): Promise<number> {
  const shell = argv[0] as (typeof SHELLS)[number];
  if (argv.length !== 1 || !SHELLS.includes(shell)) throw new UsageError(`completion takes one shell: ${SHELLS.join(', ')}`);
  const table = await completionTable(commands);
  io.stdout.write(shell === 'bash' ? bash(table) : shell === 'zsh' ? zsh(table) : fish(table));
  return EXIT_OK;
}
