// kratactl's command dispatch. `run` returns the exit status instead of exiting, so tests drive the
// real CLI in-process with their own streams.
import { APPLY_HELP, apply } from './commands/apply.js';
import { ATTACH_HELP, attach } from './commands/attach.js';
import { COMPLETION_HELP, completion } from './commands/completion.js';
import { DELETE_HELP, del } from './commands/delete.js';
import { DESCRIBE_HELP, describe } from './commands/describe.js';
import { DIFF_HELP, diff } from './commands/diff.js';
import { EXEC_HELP, exec } from './commands/exec.js';
import { EVENTS_HELP, events } from './commands/events.js';
import { EXPLAIN_HELP, explain } from './commands/explain.js';
import { GET_HELP, get } from './commands/get.js';
import { CONSOLE_HELP, DESTROY_HELP, destroy } from './commands/destroy.js';
import { HOST_HELP, host } from './commands/host.js';
import { IMAGE_HELP, image } from './commands/image.js';
import { LAUNCH_HELP, launch } from './commands/launch.js';
import { LIST_HELP, list } from './commands/list.js';
import { LOGS_HELP, logs } from './commands/logs.js';
import { ROLLOUT_HELP, rollout } from './commands/rollout.js';
import { RUN_HELP, run as runGuest } from './commands/run.js';
import { SCALE_HELP, scale } from './commands/scale.js';
import { TOP_HELP, top } from './commands/top.js';
import { version } from './commands/version.js';
import { WAIT_HELP, wait } from './commands/wait.js';
import { FlagError } from '../lib/cli-flags.js';
import { closest } from '../lib/closest.js';
import { EXIT_FAILED, EXIT_OK, EXIT_USAGE, UsageError, type IO } from './io.js';

interface Command {
  summary: string;
  help: string;
  run: (argv: string[], io: IO) => Promise<number>;
}

const COMMANDS: Record<string, Command> = {
  apply: { summary: 'create or update objects from manifests (-f), or check them (--dry-run)', help: APPLY_HELP, run: apply },
  diff: { summary: 'show what apply -f would change, as a unified diff (exit 1 when it would)', help: DIFF_HELP, run: diff },
  get: {
    summary: 'list guests or guestsets, or show some (-l, -o wide|yaml|json|name|jsonpath=|custom-columns=, -w)',
    help: GET_HELP,
    run: get,
  },
  describe: { summary: 'show a guest or guestset in detail: status, conditions, events', help: DESCRIBE_HELP, run: describe },
  delete: { summary: 'delete guests or guestsets by name, --all, -l SELECTOR, or from manifests (-f)', help: DELETE_HELP, run: del },
  wait: {
    summary: 'wait until guests or guestsets meet a condition (--for=condition=Ready|delete|jsonpath=...)',
    help: WAIT_HELP,
    run: wait,
  },
  events: { summary: 'list the events recorded about guests (--for guest/NAME, -A, -w to follow)', help: EVENTS_HELP, run: events },
  scale: { summary: 'set how many guests a guestset runs (--replicas N)', help: SCALE_HELP, run: scale },
  rollout: { summary: "wait for a guestset's rollout to finish (rollout status gs/NAME)", help: ROLLOUT_HELP, run: rollout },
  run: { summary: 'run an image as a new guest and attach to it', help: RUN_HELP, run: runGuest },
  logs: { summary: "print a guest's console output (-f to follow)", help: LOGS_HELP, run: logs },
  attach: { summary: "attach the terminal to a guest's console (Ctrl+] detaches)", help: ATTACH_HELP, run: attach },
  exec: { summary: 'run a command in a running guest (-i stdin, -t terminal)', help: EXEC_HELP, run: exec },
  explain: { summary: 'document a kind or field of the API', help: EXPLAIN_HELP, run: explain },
  image: { summary: 'pull, import, list and remove cached images (pull|import|ls|rm|prune)', help: IMAGE_HELP, run: image },
  top: { summary: 'show what running guests use: CPU, memory, load (-A, -w to refresh)', help: TOP_HELP, run: top },
  host: { summary: "show the node agent's host (status)", help: HOST_HELP, run: host },
  launch: { summary: "launch an image as a new guest, print its UUID (krata's launch; -a attaches)", help: LAUNCH_HELP, run: launch },
  list: { summary: 'list the guests of this host with their UUIDs and addresses', help: LIST_HELP, run: list },
  destroy: { summary: 'destroy guests by NAME or UUID (as delete guest)', help: DESTROY_HELP, run: destroy },
  console: { summary: "attach to a guest's console by NAME or UUID (as attach)", help: CONSOLE_HELP, run: attach },
  completion: {
    summary: 'print a bash or zsh completion script',
    help: COMPLETION_HELP,
    run: (argv, io) => completion(argv, io, COMMANDS),
  },
  version: { summary: 'print the version', help: 'Usage: kratactl version\n', run: version },
};

export const USAGE = `kratactl controls krata: OCI images as Xen PV guests, declared as Guest objects.

Usage: kratactl COMMAND [options]

Commands:
${Object.entries(COMMANDS)
  .map(([name, c]) => `  ${name.padEnd(10)} ${c.summary}`)
  .join('\n')}

Run 'kratactl COMMAND --help' for a command's options.
`;

/** Flags kubectl users put before the verb (`kratactl -n web get`): moved after it, where commands parse them. */
const GLOBAL_VALUE_FLAGS = new Set(['-n', '--namespace', '--agent']);

function hoistGlobalFlags(argv: string[]): string[] {
  const globals: string[] = [];
  let i = 0;
  while (i < argv.length) {
    const a = argv[i]!;
    const word = a.startsWith('--') ? a.split('=')[0]! : a.slice(0, 2);
    if (!GLOBAL_VALUE_FLAGS.has(word)) break;
    const joined = a.startsWith('--') ? a.includes('=') : a.length > 2;
    globals.push(...argv.slice(i, joined ? i + 1 : i + 2));
    i += joined ? 1 : 2;
  }
  if (globals.length === 0 || i >= argv.length) return argv;
  return [argv[i]!, ...globals, ...argv.slice(i + 1)];
}

export async function run(argv: string[], io: IO): Promise<number> {
  const [name, ...rest] = hoistGlobalFlags(argv);
  if (name === undefined || name === '--help' || name === '-h' || name === 'help') {
    const topic = name === 'help' ? rest[0] : undefined;
    io.stdout.write(topic && COMMANDS[topic] ? COMMANDS[topic].help : USAGE);
    return name === undefined ? EXIT_USAGE : EXIT_OK;
  }
  if (name === '--version') return version([], io);
  const command = COMMANDS[name];
  if (!command) {
    const near = closest(name, Object.keys(COMMANDS));
    io.stderr.write(
      `error: unknown command "${name}" for "kratactl"\n` +
        (near ? `\nDid you mean this?\n\t${near}\n` : '') +
        `\nRun 'kratactl --help' for usage.\n`,
    );
    return EXIT_USAGE;
  }
  // Words after -- belong to something else (the guest's command in `run` and `exec`).
  const own = rest.includes('--') ? rest.slice(0, rest.indexOf('--')) : rest;
  if (own.includes('--help') || own.includes('-h')) {
    io.stdout.write(command.help);
    return EXIT_OK;
  }
  try {
    return await command.run(rest, io);
  } catch (err) {
    const e = err as Error & { code?: string };
    if (err instanceof UsageError || err instanceof FlagError) {
      io.stderr.write(`error: ${e.message}\nRun 'kratactl ${name} --help' for usage.\n`);
      return EXIT_USAGE;
    }
    io.stderr.write(`error: ${e.stack ?? e.message}\n`);
    return EXIT_FAILED;
  }
}
