/**
 * Shell completion scripts, made from the commands themselves: their names from the registry,
 * their options from their --help text (the one place options are listed for people), so a
 * new option completes the day it is documented.
 */
import type { Command } from './io.js';

export interface CommandOptions {
  name: string;
  /** long options, with their dashes */
  long: string[];
  /** one-letter options, with their dash */
  short: string[];
}

/** The options a command's --help lists (`  -o, --output DIR  …`, `  --quiet  …`). */
export function optionsOf(c: Command): CommandOptions {
  const long = new Set<string>(['--help']);
  const short = new Set<string>(['-h']);
  // an option line starts with two spaces and a dash; its head ends where the description does
  for (const line of c.help.matchAll(/^ {2}(-[^\n]*?)(?: {2,}|$)/gm)) {
    for (const o of line[1]!.matchAll(/(?<![\w-])(--[a-z0-9][a-z0-9-]*|-[a-zA-Z])(?![\w-])/g)) (o[1]!.startsWith('--') ? long : short).add(o[1]!);
  }
  return { name: c.name, long: [...long], short: [...short] };
}

export function bashScript(cmds: readonly CommandOptions[]): string {
  const cases = cmds.map((c) => `    ${c.name}) opts="${[...c.long, ...c.short].join(' ')}" ;;`).join('\n');
  return `# torrent-tools completion for bash: eval "$(torrent-tools completion bash)"
_torrent_tools() {
  local cur=\${COMP_WORDS[COMP_CWORD]} opts=""
  if [ "$COMP_CWORD" -eq 1 ]; then
    COMPREPLY=($(compgen -W "${cmds.map((c) => c.name).join(' ')} help --help --version" -- "$cur"))
    return
  fi
  case "\${COMP_WORDS[1]}" in
${cases}
  esac
  if [[ $cur == -* ]]; then
    COMPREPLY=($(compgen -W "$opts" -- "$cur"))
  else
    COMPREPLY=($(compgen -f -- "$cur"))
  fi
}
complete -o filenames -F _torrent_tools torrent-tools
`;
}

export function zshScript(cmds: readonly CommandOptions[]): string {
  // zsh runs the bash function through its own bash-completion layer
  return `# torrent-tools completion for zsh: eval "$(torrent-tools completion zsh)"
autoload -U +X bashcompinit && bashcompinit
${bashScript(cmds)}`;
}

export function fishScript(cmds: readonly CommandOptions[]): string {
  const lines = [
    '# torrent-tools completion for fish: torrent-tools completion fish | source',
    'complete -c torrent-tools -f -n __fish_use_subcommand -l help -d "show the help"',
    'complete -c torrent-tools -f -n __fish_use_subcommand -l version -d "print the version"',
  ];
  for (const c of cmds) {
    lines.push(`complete -c torrent-tools -f -n __fish_use_subcommand -a ${c.name}`);
    const when = `"__fish_seen_subcommand_from ${c.name}"`;
    for (const l of c.long) lines.push(`complete -c torrent-tools -n ${when} -l ${l.slice(2)}`);
    for (const s of c.short) lines.push(`complete -c torrent-tools -n ${when} -s ${s.slice(1)}`);
    lines.push(`complete -c torrent-tools -n ${when} -F`);
  }
  return lines.join('\n') + '\n';
}
