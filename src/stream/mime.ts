/**
 * Content-Type by file extension: a small table of what people stream or fetch from a
 * torrent. Players (mpv, VLC, browsers' <video>) sniff the bytes anyway; the type mostly
 * decides whether a browser plays a file inline or saves it.
 */
const TYPES: Readonly<Record<string, string>> = {
  mp4: 'video/mp4', m4v: 'video/mp4', mkv: 'video/x-matroska', webm: 'video/webm', avi: 'video/x-msvideo',
  mov: 'video/quicktime', ts: 'video/mp2t', mpg: 'video/mpeg', mpeg: 'video/mpeg', ogv: 'video/ogg',
  mp3: 'audio/mpeg', m4a: 'audio/mp4', flac: 'audio/flac', ogg: 'audio/ogg', opus: 'audio/ogg', wav: 'audio/wav',
  aac: 'audio/aac',
  txt: 'text/plain; charset=utf-8', nfo: 'text/plain; charset=utf-8', srt: 'text/plain; charset=utf-8',
  vtt: 'text/vtt', md: 'text/markdown; charset=utf-8',
  html: 'text/html; charset=utf-8', htm: 'text/html; charset=utf-8', css: 'text/css', js: 'text/javascript',
  json: 'application/json', xml: 'application/xml', pdf: 'application/pdf', epub: 'application/epub+zip',
  iso: 'application/x-iso9660-image', zip: 'application/zip', gz: 'application/gzip', xz: 'application/x-xz',
  zst: 'application/zstd', bz2: 'application/x-bzip2', tar: 'application/x-tar', '7z': 'application/x-7z-compressed',
  jpg: 'image/jpeg', jpeg: 'image/jpeg', png: 'image/png', gif: 'image/gif', webp: 'image/webp', svg: 'image/svg+xml',
};

/** The Content-Type for a file name; application/octet-stream when the extension is not in the table. */
export function contentType(name: string): string {
  const dot = name.lastIndexOf('.');
  const ext = dot < 0 ? '' : name.slice(dot + 1).toLowerCase();
  return Object.hasOwn(TYPES, ext) ? TYPES[ext]! : 'application/octet-stream';
}
