// kratactl destroy ID... and console ID: krata's verbs, where ID is a guest's NAME or its UUID
// (guest-ref.ts). destroy is `delete guest` (stop, grace period, destroy); console is `attach`.
import { type IO } from '../io.js';
import { AGENT_HELP } from './common.js';
import { del, DELETE_OPTIONS } from './delete.js';
import { attach, ATTACH_OPTIONS } from './attach.js';

export const DESTROY_HELP = `Destroy guests by NAME or UUID (krata's destroy; as kratactl delete guest).

Usage: kratactl destroy ID... [options]

      --wait              return only once each guest's domain and resources are gone
      --grace-period N    seconds between the stop request and destroying the domain
${AGENT_HELP}
`;

export const CONSOLE_HELP = `Attach the terminal to a guest's console by NAME or UUID (krata's console; as kratactl attach).

Usage: kratactl console ID [options]

Press Ctrl+] to detach (the guest keeps running).

${AGENT_HELP}
`;

export function destroy(argv: string[], io: IO): Promise<number> {
  return del(['guest', ...argv], io);
}

/** destroy takes delete's flags, console attach's. */
export const DESTROY_OPTIONS = DELETE_OPTIONS;
export const CONSOLE_OPTIONS = ATTACH_OPTIONS;

export function consoleCommand(argv: string[], io: IO): Promise<number> {
  return attach(argv, io);
}
