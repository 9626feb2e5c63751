/**
 * Splits a child process's output into lines, linearly (each byte is scanned once and copied at most once) and
 * with a bound: a line longer than `maxBytes` is cut there (at a UTF-8 character boundary) and emitted at once
 * with a truncation marker; the rest of it, up to the next newline, is dropped. So a script printing one 50 MB
 * line, or never a newline at all, costs its readers no more than `maxBytes` of memory and one pass over the bytes.
 * Used for every child output read line by line (scoring workers, the host's children in the demo and tests).
 */
import type { Readable } from 'node:stream';

/** The longest line kept (bytes, UTF-8); see docs/reference.md "Limits". */
export const MAX_LINE_BYTES = 64 * 1024;

/** Appended to a line cut at `maxBytes`. */
export const truncationMarker = (maxBytes: number): string => ` …[line truncated at ${maxBytes} bytes]`;

/** Bytes of `buf` up to its last complete UTF-8 character (a cut may land inside a multi-byte sequence). */
function completeUtf8(buf: Buffer): Buffer {
  let i = buf.length - 1;
  let back = 0;
  while (i >= 0 && back < 3 && (buf[i] & 0xc0) === 0x80) {
    i--;
    back++;
  }
  if (i < 0) return buf;
  const lead = buf[i];
  const need = lead >= 0xf0 ? 4 : lead >= 0xe0 ? 3 : lead >= 0xc0 ? 2 : 1;
  return buf.length - i >= need ? buf : buf.subarray(0, i);
}

/** `text` cut to `maxBytes` of UTF-8 with the truncation marker, or unchanged when it fits. */
export function capText(text: string, maxBytes: number = MAX_LINE_BYTES): string {
  if (text.length * 3 <= maxBytes) return text;
  const buf = Buffer.from(text, 'utf8');
  return buf.length <= maxBytes ? text : completeUtf8(buf.subarray(0, maxBytes)).toString('utf8') + truncationMarker(maxBytes);
}

export class LineSplitter {
  private parts: Buffer[] = [];
  private kept = 0;
  /** The current line was already emitted (cut); its bytes are skipped until the next newline. */
  private skipping = false;

  constructor(
    private readonly onLine: (line: string) => void,
    private readonly maxBytes: number = MAX_LINE_BYTES,
  ) {}

  push(chunk: Buffer | string): void {
    const buf = typeof chunk === 'string' ? Buffer.from(chunk, 'utf8') : chunk;
    let start = 0;
    while (start < buf.length) {
      const nl = buf.indexOf(0x0a, start);
      this.take(buf, start, nl === -1 ? buf.length : nl);
      if (nl === -1) return;
      if (this.skipping) this.skipping = false;
      else this.emit(false);
      start = nl + 1;
    }
  }

  /** The stream ended: a last line without a newline is emitted. */
  end(): void {
    if (!this.skipping && this.kept > 0) this.emit(false);
    this.skipping = false;
    this.parts = [];
    this.kept = 0;
  }

  private take(buf: Buffer, start: number, end: number): void {
    if (this.skipping || end <= start) return;
    const room = this.maxBytes - this.kept;
    if (end - start <= room) {
      this.parts.push(buf.subarray(start, end));
      this.kept += end - start;
      return;
    }
    this.parts.push(buf.subarray(start, start + room));
    this.kept += room;
    this.emit(true);
    this.skipping = true;
  }

  private emit(truncated: boolean): void {
    let bytes = this.parts.length === 1 ? this.parts[0] : Buffer.concat(this.parts, this.kept);
    this.parts = [];
    this.kept = 0;
    if (truncated) bytes = completeUtf8(bytes);
    else if (bytes.length && bytes[bytes.length - 1] === 0x0d) bytes = bytes.subarray(0, bytes.length - 1);
    this.onLine(truncated ? bytes.toString('utf8') + truncationMarker(this.maxBytes) : bytes.toString('utf8'));
  }
}

/** Calls `onLine` for each line of `stream` (see `LineSplitter`), the last one also without a trailing newline. */
export function splitLines(stream: Readable, onLine: (line: string) => void, maxBytes: number = MAX_LINE_BYTES): LineSplitter {
  const splitter = new LineSplitter(onLine, maxBytes);
  stream.on('data', (chunk: Buffer | string) => splitter.push(chunk));
  stream.on('end', () => splitter.end());
  return splitter;
}
