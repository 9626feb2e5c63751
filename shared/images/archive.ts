/**
 * Deterministic tar.gz: entries sorted by path, fixed mtime, mode 0644 (0755 for executables we mark),
 * no uid/gid/uname/gname (tar `portable`), gzip without timestamp or name. Identical inputs → identical bytes,
 * so the archive's sha256 is a content digest. Extraction refuses absolute paths and `..` (tar's own checks).
 */
import * as fs from 'fs/promises';
import * as os from 'os';
import * as path from 'path';
import * as zlib from 'zlib';
import * as tar from 'tar';
import { badRequest } from '../errors';
import { unsafePathReason } from '../manifest/names';

export const FIXED_MTIME = new Date('2000-01-01T00:00:00Z');

export interface ArchiveEntry {
  /** Relative path with `/` separators. */
  path: string;
  data: Buffer;
  executable?: boolean;
}

async function collect(stream: AsyncIterable<unknown>): Promise<Buffer> {
  const chunks: Buffer[] = [];
  for await (const c of stream) chunks.push(Buffer.isBuffer(c) ? c : Buffer.from(c as string));
  return Buffer.concat(chunks);
}

/** Packs entries into a deterministic tar.gz. */
export async function createDeterministicTarGz(entries: ArchiveEntry[]): Promise<Buffer> {
  const seen = new Set<string>();
  for (const e of entries) {
    const why = unsafePathReason(e.path);
    if (why) throw badRequest('InvalidPath', `Build context entry "${e.path}" ${why}.`);
    if (seen.has(e.path)) throw badRequest('DuplicateFile', `Build context has two entries for "${e.path}".`);
    seen.add(e.path);
  }
  const sorted = [...entries].sort((a, b) => (a.path < b.path ? -1 : a.path > b.path ? 1 : 0));
  const staging = await fs.mkdtemp(path.join(os.tmpdir(), 'mdf-ctx-'));
  try {
    for (const e of sorted) {
      const dest = path.join(staging, ...e.path.split('/'));
      await fs.mkdir(path.dirname(dest), { recursive: true });
      await fs.writeFile(dest, e.data);
      await fs.chmod(dest, e.executable ? 0o755 : 0o644);
    }
    const tarStream = tar.c({ cwd: staging, portable: true, mtime: FIXED_MTIME, noDirRecurse: true, gzip: false }, sorted.map((e) => e.path));
    const raw = await collect(tarStream);
    return zlib.gzipSync(raw, { level: 9 });
  } finally {
    await fs.rm(staging, { recursive: true, force: true });
  }
}

/** Extracts a tar.gz into `dir` (created), rejecting unsafe entries. */
export async function extractTarGz(archive: Buffer, dir: string): Promise<void> {
  await fs.mkdir(dir, { recursive: true });
  const bad: string[] = [];
  await new Promise<void>((resolve, reject) => {
    const x = tar.x({
      cwd: dir,
      strict: true,
      preservePaths: false,
      filter: (p) => {
        const why = unsafePathReason(p.replace(/\/$/, ''));
        if (why) bad.push(p);
        return !why;
      },
    });
    x.on('error', reject);
    x.on('finish', () => resolve());
    x.on('close', () => resolve());
    x.end(archive);
  });
  if (bad.length) throw badRequest('InvalidArchive', `The archive holds unsafe paths: ${bad.slice(0, 5).join(', ')}.`);
}

/** Lists the entries of a tar.gz (paths only). */
export async function listTarGz(archive: Buffer): Promise<string[]> {
  const names: string[] = [];
  await new Promise<void>((resolve, reject) => {
    const p = new tar.Parser({ onReadEntry: (e) => { names.push(e.path); e.resume(); } });
    p.on('error', reject);
    p.on('end', () => resolve());
    p.on('close', () => resolve());
    p.end(archive);
  });
  return names;
}
