// `krata-node-agent image ...` without loading the daemon: what kratactl image --offline runs (main.ts
// answers `krata-node-agent image` with the same command). The daemon's modules would cost this short
// process about 40 MB and half a second.
import { imageCommand } from './image-command.js';

// An exit, not an exit code: with --stop-on-eof, standard input stays open until kratactl sees the end.
process.exit(await imageCommand(process.argv.slice(2)));
