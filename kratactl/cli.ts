// kratactl's command dispatch. `run` returns the exit status instead of exiting, so tests drive the
// real CLI in-process with their own streams.
import { FlagError, type FlagSpecs } from '../lib/cli-flags.js';
import { closest } from '../lib/closest.js';
import { EXIT_FAILED, EXIT_OK, EXIT_USAGE, UsageError, type IO } from './io.js';

/** What a command's module gives the dispatcher. */
export interface CommandModule {
  help: string;
  /** Its flags, as it parses them (lib/cli-flags.ts); completion offers them. */
  options: FlagSpecs;
  run: (argv: string[], io: IO) => Promise<number>;
}

/**
 * A command: its one-line summary for the usage, and its module, imported only when the command runs
 * (a start reads only what the command needs). Adding a command is one entry here.
 */
export interface Command {
  summary: string;
  load: () => Promise<CommandModule>;
}

export const COMMANDS: Record<string, Command> = {
  apply: {
    summary: 'create or update objects from manifests (-f), or check them (--dry-run)',
    load: async () => {
      const m = await import('./commands/apply.js');
      return { help: m.APPLY_HELP, options: m.APPLY_OPTIONS, run: m.apply };
    },
  },
  diff: {
    summary: 'show what apply -f would change, as a unified diff (exit 1 when it would)',
    load: async () => {
      const m = await import('./commands/diff.js');
      return { help: m.DIFF_HELP, options: m.DIFF_OPTIONS, run: m.diff };
    },
  },
  get: {
    summary: 'list guests or guestsets, or show some (-l, -o wide|yaml|json|name|jsonpath=|custom-columns=, -w)',
    load: async () => {
      const m = await import('./commands/get.js');
      return { help: m.GET_HELP, options: m.GET_OPTIONS, run: m.get };
    },
  },
  describe: {
    summary: 'show a guest or guestset in detail: status, conditions, events',
    load: async () => {
      const m = await import('./commands/describe.js');
      return { help: m.DESCRIBE_HELP, options: m.DESCRIBE_OPTIONS, run: m.describe };
    },
  },
  delete: {
    summary: 'delete guests or guestsets by name, --all, -l SELECTOR, or from manifests (-f)',
    load: async () => {
      const m = await import('./commands/delete.js');
      return { help: m.DELETE_HELP, options: m.DELETE_OPTIONS, run: m.del };
    },
  },
  wait: {
    summary: 'wait until guests or guestsets meet a condition (--for=condition=Ready|delete|jsonpath=...)',
    load: async () => {
      const m = await import('./commands/wait.js');
      return { help: m.WAIT_HELP, options: m.WAIT_OPTIONS, run: m.wait };
    },
  },
  events: {
    summary: 'list the events recorded about guests (--for guest/NAME, -A, -w to follow)',
    load: async () => {
      const m = await import('./commands/events.js');
      return { help: m.EVENTS_HELP, options: m.EVENTS_OPTIONS, run: m.events };
    },
  },
  scale: {
    summary: 'set how many guests a guestset runs (--replicas N)',
    load: async () => {
      const m = await import('./commands/scale.js');
      return { help: m.SCALE_HELP, options: m.SCALE_OPTIONS, run: m.scale };
    },
  },
  rollout: {
    summary: "wait for a guestset's rollout to finish (rollout status gs/NAME)",
    load: async () => {
      const m = await import('./commands/rollout.js');
      return { help: m.ROLLOUT_HELP, options: m.ROLLOUT_OPTIONS, run: m.rollout };
    },
  },
  run: {
    summary: 'run an image as a new guest and attach to it',
    load: async () => {
      const m = await import('./commands/run.js');
      return { help: m.RUN_HELP, options: m.RUN_OPTIONS, run: m.run };
    },
  },
  logs: {
    summary: "print a guest's console output (-f to follow)",
    load: async () => {
      const m = await import('./commands/logs.js');
      return { help: m.LOGS_HELP, options: m.LOGS_OPTIONS, run: m.logs };
    },
  },
  attach: {
    summary: "attach the terminal to a guest's console (Ctrl+] detaches)",
    load: async () => {
      const m = await import('./commands/attach.js');
      return { help: m.ATTACH_HELP, options: m.ATTACH_OPTIONS, run: m.attach };
    },
  },
  exec: {
    summary: 'run a command in a running guest (-i stdin, -t terminal)',
    load: async () => {
      const m = await import('./commands/exec.js');
      return { help: m.EXEC_HELP, options: m.EXEC_OPTIONS, run: m.exec };
    },
  },
  explain: {
    summary: 'document a kind or field of the API',
    load: async () => {
      const m = await import('./commands/explain.js');
      return { help: m.EXPLAIN_HELP, options: m.EXPLAIN_OPTIONS, run: m.explain };
    },
  },
  image: {
    summary: 'pull, import, list and remove cached images (pull|import|ls|rm|prune)',
    load: async () => {
      const m = await import('./commands/image.js');
      return { help: m.IMAGE_HELP, options: m.IMAGE_OPTIONS, run: m.image };
    },
  },
  top: {
    summary: 'show what running guests use: CPU, memory, load (-A, -w to refresh)',
    load: async () => {
      const m = await import('./commands/top.js');
      return { help: m.TOP_HELP, options: m.TOP_OPTIONS, run: m.top };
    },
  },
  host: {
    summary: "show the node agent's host (status)",
    load: async () => {
      const m = await import('./commands/host.js');
      return { help: m.HOST_HELP, options: m.HOST_OPTIONS, run: m.host };
    },
  },
  launch: {
    summary: "launch an image as a new guest, print its UUID (krata's launch; -a attaches)",
    load: async () => {
      const m = await import('./commands/launch.js');
      return { help: m.LAUNCH_HELP, options: m.LAUNCH_OPTIONS, run: m.launch };
    },
  },
  list: {
    summary: 'list the guests of this host with their UUIDs and addresses',
    load: async () => {
      const m = await import('./commands/list.js');
      return { help: m.LIST_HELP, options: m.LIST_OPTIONS, run: m.list };
    },
  },
  destroy: {
    summary: 'destroy guests by NAME or UUID (as delete guest)',
    load: async () => {
      const m = await import('./commands/destroy.js');
      return { help: m.DESTROY_HELP, options: m.DESTROY_OPTIONS, run: m.destroy };
    },
  },
  console: {
    summary: "attach to a guest's console by NAME or UUID (as attach)",
    load: async () => {
      const m = await import('./commands/destroy.js');
      return { help: m.CONSOLE_HELP, options: m.CONSOLE_OPTIONS, run: m.consoleCommand };
    },
  },
  completion: {
    summary: 'print a bash, zsh or fish completion script',
    load: async () => {
      const m = await import('./commands/completion.js');
      return { help: m.COMPLETION_HELP, options: {}, run: (argv, io) => m.completion(argv, io, COMMANDS) };
    },
  },
  version: {
    summary: 'print the version',
    load: async () => {
      const m = await import('./commands/version.js');
      return { help: m.VERSION_HELP, options: m.VERSION_OPTIONS, run: m.version };
    },
  },
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
    io.stdout.write(topic && COMMANDS[topic] ? (await COMMANDS[topic].load()).help : USAGE);
    return name === undefined ? EXIT_USAGE : EXIT_OK;
  }
  const command = COMMANDS[name === '--version' ? 'version' : name];
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
  const loaded = await command.load();
  if (own.includes('--help') || own.includes('-h')) {
    io.stdout.write(loaded.help);
    return EXIT_OK;
  }
  try {
    return await loaded.run(name === '--version' ? ['--client'] : rest, io);
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
