import { parseArgs } from '../cli/args.js';
import { bashScript, fishScript, optionsOf, zshScript } from '../cli/completion.js';
import { UsageError } from '../cli/errors.js';
import type { Command } from '../cli/io.js';

const SHELLS = ['bash', 'zsh', 'fish'];

export const completion: Command = {
  name: 'completion',
  synopsis: 'bash|zsh|fish',
  help: `usage: torrent-tools completion bash|zsh|fish

Prints a script that teaches the shell to complete torrent-tools: the commands, each
command's options (as its --help lists them), and file names for the arguments.

examples:
  eval "$(torrent-tools completion bash)"         # in ~/.bashrc
  eval "$(torrent-tools completion zsh)"          # in ~/.zshrc
  torrent-tools completion fish | source          # in ~/.config/fish/config.fish
  torrent-tools completion bash > /etc/bash_completion.d/torrent-tools
`,
  async run(argv, io) {
    const a = parseArgs(argv, {});
    const shell = a.positional[0];
    if (a.positional.length !== 1 || shell === undefined || !SHELLS.includes(shell)) throw new UsageError(`expected one of ${SHELLS.join(', ')}`);
    // every command, this one included, loaded for its help text
    const { commands } = await import('./index.js');
    const cmds = await Promise.all(commands.map(async (e) => optionsOf(await e.load())));
    const script = shell === 'bash' ? bashScript(cmds) : shell === 'zsh' ? zshScript(cmds) : fishScript(cmds);
    await new Promise<void>((resolve, reject) => io.stdout.write(script, (e) => (e ? reject(e) : resolve())));
    return 0;
  },
};
