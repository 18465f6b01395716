// kubectl krata's command dispatch. `run` returns the exit status instead of exiting, so tests drive the real
// CLI in-process with their own streams. Errors are printed as kubectl prints them.
import { ATTACH_HELP, attach } from './commands/attach.js';
import { EXEC_HELP, exec } from './commands/exec.js';
import { LOGS_HELP, logs } from './commands/logs.js';
import { PORT_FORWARD_HELP, portForward } from './commands/port-forward.js';
import { TOP_HELP, top } from './commands/top.js';
import { CommandError, EXIT_FAILED, EXIT_OK, UsageError, type IO } from './io.js';
import { ServerError } from './server-error.js';

interface Command {
  summary: string;
  help: string;
  run: (argv: string[], io: IO) => Promise<number>;
}

const COMMANDS: Record<string, Command> = {
  logs: { summary: "print a Guest's console output (-f to follow)", help: LOGS_HELP, run: logs },
  attach: { summary: "attach the terminal to a Guest's console (Ctrl+] detaches)", help: ATTACH_HELP, run: attach },
  exec: { summary: 'run a command in a running Guest (-i stdin, -t terminal)', help: EXEC_HELP, run: exec },
  'port-forward': { summary: 'forward local ports to ports of a running Guest', help: PORT_FORWARD_HELP, run: portForward },
  top: { summary: 'show what running Guests use: CPU, memory, load', help: TOP_HELP, run: top },
};

export const USAGE = `kubectl krata reaches krata's Guests through the cluster: their consoles, commands in them, their ports
and what they use, served by krata-api (subresources.krata.dev) through the kube-apiserver.

Usage: kubectl krata COMMAND [options]

Commands:
${Object.entries(COMMANDS)
  .map(([name, c]) => `  ${name.padEnd(13)} ${c.summary}`)
  .join('\n')}

Every command takes -n/--namespace, --context and --kubeconfig as kubectl does.
Run 'kubectl krata COMMAND --help' for a command's options.
`;

export async function run(argv: string[], io: IO): Promise<number> {
  const [name, ...rest] = argv;
  if (name === undefined || name === '--help' || name === '-h' || name === 'help') {
    const topic = name === 'help' ? rest[0] : undefined;
    io.stdout.write(topic && COMMANDS[topic] ? COMMANDS[topic].help : USAGE);
    return name === undefined ? EXIT_FAILED : EXIT_OK;
  }
  const command = Object.hasOwn(COMMANDS, name) ? COMMANDS[name] : undefined;
  if (!command) {
    io.stderr.write(`error: unknown command "${name}" for "kubectl krata"\nRun 'kubectl krata --help' for usage.\n`);
    return EXIT_FAILED;
  }
  // Words after -- belong to the guest's command (exec).
  const own = rest.includes('--') ? rest.slice(0, rest.indexOf('--')) : rest;
  if (own.includes('--help') || own.includes('-h')) {
    io.stdout.write(command.help);
    return EXIT_OK;
  }
  try {
    return await command.run(rest, io);
  } catch (err) {
    if (err instanceof UsageError) io.stderr.write(`error: ${err.message}\nSee 'kubectl krata ${name} --help' for usage.\n`);
    else if (err instanceof ServerError) io.stderr.write(`${err.describe()}\n`);
    else if (err instanceof CommandError) io.stderr.write(`error: ${err.message}\n`);
    else io.stderr.write(`error: ${(err as Error).stack ?? String(err)}\n`);
    return EXIT_FAILED;
  }
}
