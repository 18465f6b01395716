// kratactl's command dispatch. `run` returns the exit status instead of exiting, so tests drive the
// real CLI in-process with their own streams.
import { APPLY_HELP, apply } from './commands/apply.js';
import { EXPLAIN_HELP, explain } from './commands/explain.js';
import { IMAGE_HELP, image } from './commands/image.js';
import { version } from './commands/version.js';
import { EXIT_FAILED, EXIT_OK, EXIT_USAGE, UsageError, type IO } from './io.js';

interface Command {
  summary: string;
  help: string;
  run: (argv: string[], io: IO) => Promise<number>;
}

const COMMANDS: Record<string, Command> = {
  apply: { summary: 'create or update objects from manifests (-f), or check them (--dry-run)', help: APPLY_HELP, run: apply },
  explain: { summary: 'document a kind or field of the API', help: EXPLAIN_HELP, run: explain },
  image: { summary: 'pull, import, list and remove cached images (pull|import|ls|rm|prune)', help: IMAGE_HELP, run: image },
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

export async function run(argv: string[], io: IO): Promise<number> {
  const [name, ...rest] = argv;
  if (name === undefined || name === '--help' || name === '-h' || name === 'help') {
    const topic = name === 'help' ? rest[0] : undefined;
    io.stdout.write(topic && COMMANDS[topic] ? COMMANDS[topic].help : USAGE);
    return name === undefined ? EXIT_USAGE : EXIT_OK;
  }
  if (name === '--version') return version([], io);
  const command = COMMANDS[name];
  if (!command) {
    io.stderr.write(`error: unknown command "${name}"\n\n${USAGE}`);
    return EXIT_USAGE;
  }
  if (rest.includes('--help') || rest.includes('-h')) {
    io.stdout.write(command.help);
    return EXIT_OK;
  }
  try {
    return await command.run(rest, io);
  } catch (err) {
    const e = err as Error & { code?: string };
    if (err instanceof UsageError || e.code?.startsWith('ERR_PARSE_ARGS')) {
      io.stderr.write(`error: ${e.message}\nRun 'kratactl ${name} --help' for usage.\n`);
      return EXIT_USAGE;
    }
    io.stderr.write(`error: ${e.stack ?? e.message}\n`);
    return EXIT_FAILED;
  }
}
