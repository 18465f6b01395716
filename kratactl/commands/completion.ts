// kratactl completion bash|zsh: shell completion for commands, subcommands, flags and their values.
// The lists are static (one table below); guest names are asked of the agent at completion time
// with `kratactl get -o name`, honouring -n and --agent already on the command line.
import { EXIT_OK, UsageError, type IO } from '../io.js';

export const COMPLETION_HELP = `Print a shell completion script.

Usage: kratactl completion bash|zsh

  bash:  source <(kratactl completion bash)       (or save it in /etc/bash_completion.d/kratactl)
  zsh:   source <(kratactl completion zsh)        (after compinit)
`;

interface CommandCompletion {
  flags: string[];
  /** Flags that take a value, with the values to offer: a list, 'files', or nothing ([]). */
  values?: Record<string, string[] | 'files'>;
  /** Words offered for positionals (subcommands, kinds). */
  words?: string[];
  /** Offer the agent's guest names for positionals. */
  guests?: boolean;
}

const AGENT = ['-n', '--namespace', '--agent'];
const AGENT_VALUES: Record<string, string[] | 'files'> = { '-n': [], '--namespace': [], '--agent': 'files' };

const GET_OUTPUTS = ['wide', 'yaml', 'json', 'name', 'jsonpath=', 'jsonpath-file=', 'custom-columns=', 'custom-columns-file='];

export const COMPLETIONS: Record<string, CommandCompletion> = {
  apply: {
    flags: ['-f', '--filename', '-R', '--recursive', '--dry-run', '--dry-run=client', '--dry-run=server', '-o', '--output', ...AGENT],
    values: { '-f': 'files', '--filename': 'files', '-o': ['yaml', 'json', 'name'], '--output': ['yaml', 'json', 'name'], ...AGENT_VALUES },
  },
  explain: { flags: ['--recursive'], words: ['guest', 'xenhost', 'guest.spec', 'guest.status', 'xenhost.spec', 'xenhost.status'] },
  image: {
    flags: [
      '--store',
      '--insecure-registry',
      '--mirror',
      '--docker-config',
      '--pull-secret-file',
      '--pull-secret',
      '-n',
      '--namespace',
      '--agent',
      '--platform',
      '--name',
      '--budget',
      '-q',
      '--quiet',
      '-o',
      '--output',
    ],
    values: {
      '--store': 'files',
      '--insecure-registry': [],
      '--mirror': [],
      '--docker-config': 'files',
      '--pull-secret-file': 'files',
      '--pull-secret': [],
      '-n': [],
      '--namespace': [],
      '--agent': 'files',
      '--platform': ['linux/amd64', 'linux/arm64'],
      '--name': [],
      '--budget': [],
      '-o': ['table', 'wide', 'json'],
      '--output': ['table', 'wide', 'json'],
    },
    words: ['pull', 'import', 'ls', 'rm', 'prune'],
  },
  version: { flags: [] },
  get: {
    flags: [
      '-o',
      '--output',
      '-w',
      '--watch',
      '-A',
      '--all-namespaces',
      '-l',
      '--selector',
      '--field-selector',
      '--sort-by',
      '--no-headers',
      '--show-labels',
      ...AGENT,
    ],
    values: {
      '-o': GET_OUTPUTS,
      '--output': GET_OUTPUTS,
      '-l': [],
      '--selector': [],
      '--field-selector': ['metadata.name=', 'metadata.namespace=', 'status.phase=', 'spec.nodeName=', 'status.node='],
      '--sort-by': ['.metadata.name', '.metadata.creationTimestamp', '.status.phase', '.status.restartCount'],
      ...AGENT_VALUES,
    },
    words: ['guests', 'guestsets'],
    guests: true,
  },
  wait: {
    flags: ['--for', '--timeout', '--all', '-l', '--selector', '--field-selector', '-A', '--all-namespaces', ...AGENT],
    values: {
      '--for': ['condition=Ready', 'delete', 'jsonpath='],
      '--timeout': [],
      '-l': [],
      '--selector': [],
      '--field-selector': [],
      ...AGENT_VALUES,
    },
    words: ['guest', 'guests', 'guestset'],
    guests: true,
  },
  events: {
    flags: ['--for', '--types', '-w', '--watch', '--no-headers', '-o', '--output', '-A', '--all-namespaces', ...AGENT],
    values: { '--for': [], '--types': ['Normal', 'Warning'], '-o': ['yaml', 'json'], '--output': ['yaml', 'json'], ...AGENT_VALUES },
  },
  diff: {
    flags: ['-f', '--filename', '-R', '--recursive', ...AGENT],
    values: { '-f': 'files', '--filename': 'files', ...AGENT_VALUES },
  },
  describe: { flags: AGENT, values: AGENT_VALUES, words: ['guest'], guests: true },
  delete: {
    flags: [
      '-f',
      '--filename',
      '-R',
      '--recursive',
      '--wait',
      '--grace-period',
      '--all',
      '--ignore-not-found',
      '-l',
      '--selector',
      '--field-selector',
      '-A',
      '--all-namespaces',
      ...AGENT,
    ],
    values: {
      '-f': 'files',
      '--filename': 'files',
      '--grace-period': [],
      '-l': [],
      '--selector': [],
      '--field-selector': [],
      ...AGENT_VALUES,
    },
    words: ['guest'],
    guests: true,
  },
  logs: { flags: ['-f', '--follow', '--tail', ...AGENT], values: { '--tail': [], ...AGENT_VALUES }, guests: true },
  attach: { flags: AGENT, values: AGENT_VALUES, guests: true },
  exec: {
    flags: ['-i', '--stdin', '-t', '--tty', '-e', '--env', '-w', '--workdir', '-u', '--user', ...AGENT],
    values: { '-e': [], '--env': [], '-w': [], '--workdir': [], '-u': [], '--user': [], ...AGENT_VALUES },
    guests: true,
  },
  run: {
    flags: ['--name', '--cpus', '--memory', '-e', '--env', '-t', '--tty', '--restart', '--rm', ...AGENT],
    values: {
      '--name': [],
      '--cpus': [],
      '--memory': [],
      '-e': [],
      '--env': [],
      '--restart': ['Never', 'OnFailure', 'Always'],
      ...AGENT_VALUES,
    },
  },
  top: {
    flags: ['-A', '--all-namespaces', '-w', '--watch', '--interval', '--no-headers', '-o', '--output', ...AGENT],
    values: { '--interval': [], '-o': ['json', 'yaml'], '--output': ['json', 'yaml'], ...AGENT_VALUES },
    guests: true,
  },
  host: {
    flags: ['-o', '--output', '--agent'],
    values: { '-o': ['yaml', 'json'], '--output': ['yaml', 'json'], '--agent': 'files' },
    words: ['status'],
  },
  completion: { flags: [], words: ['bash', 'zsh'] },
};

const shellWords = (words: string[]) => words.join(' ');
const quoteSingle = (s: string) => `'${s.replace(/'/g, `'\\''`)}'`;

/** The `case` arms that complete a flag's value, shared by both shells (their case syntax is the same). */
function valueArms(file: string, list: (words: string[]) => string, none: string): string {
  const arms: string[] = [];
  for (const [cmd, spec] of Object.entries(COMPLETIONS)) {
    for (const [flag, values] of Object.entries(spec.values ?? {})) {
      const action = values === 'files' ? file : values.length ? list(values) : none;
      arms.push(`    ${cmd}:${flag}) ${action}; return ;;`);
    }
  }
  return arms.join('\n');
}

function bash(commands: Record<string, { summary: string }>): string {
  const flagArms = Object.entries(COMPLETIONS)
    .map(([cmd, s]) => `    ${cmd}) words=${quoteSingle(shellWords(s.flags))} ;;`)
    .join('\n');
  const wordArms = Object.entries(COMPLETIONS)
    .filter(([, s]) => s.words || s.guests)
    .map(([cmd, s]) => `    ${cmd}) words=${quoteSingle(shellWords(s.words ?? []))}${s.guests ? '; guests=1' : ''} ;;`)
    .join('\n');
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
    COMPREPLY=($(compgen -W ${quoteSingle(shellWords([...Object.keys(commands), 'help']))} -- "$cur"))
    return
  fi
  case "$cmd:$prev" in
${valueArms('COMPREPLY=($(compgen -f -- "$cur"))', (w) => `COMPREPLY=($(compgen -W ${quoteSingle(shellWords(w))} -- "$cur"))`, ':')}
  esac
  if [[ $cur == -* ]]; then
    case "$cmd" in
${flagArms}
    esac
    COMPREPLY=($(compgen -W "$words" -- "$cur"))
    return
  fi
  case "$cmd" in
    help) words=${quoteSingle(shellWords(Object.keys(commands)))} ;;
${wordArms}
  esac
  if ((guests)); then words="$words $(_kratactl_guests)"; fi
  COMPREPLY=($(compgen -W "$words" -- "$cur"))
}

complete -F _kratactl kratactl
`;
}

function zsh(commands: Record<string, { summary: string }>): string {
  const described = Object.entries(commands).map(([name, c]) => quoteSingle(`${name}:${c.summary}`));
  const flagArms = Object.entries(COMPLETIONS)
    .filter(([, s]) => s.flags.length)
    .map(([cmd, s]) => `    ${cmd}) compadd -- ${shellWords(s.flags)} ;;`)
    .join('\n');
  const wordArms = Object.entries(COMPLETIONS)
    .filter(([, s]) => s.words || s.guests)
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
${valueArms('_files', (w) => `compadd -- ${shellWords(w)}`, ':')}
  esac
  if [[ $cur == -* ]]; then
    case $cmd in
${flagArms}
    esac
    return
  fi
  case $cmd in
    help) compadd -- ${shellWords(Object.keys(commands))} ;;
${wordArms}
  esac
}

compdef _kratactl kratactl
`;
}

export async function completion(argv: string[], io: IO, commands: Record<string, { summary: string }>): Promise<number> {
  if (argv.length !== 1 || (argv[0] !== 'bash' && argv[0] !== 'zsh')) throw new UsageError('completion takes one shell: bash or zsh');
  io.stdout.write(argv[0] === 'bash' ? bash(commands) : zsh(commands));
  return EXIT_OK;
}
