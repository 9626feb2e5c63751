/**
 * Tabular inputs (CSV / JSONL): record boundaries by byte offset, partitioning of one file into row ranges,
 * and parsing of one range back into rows.
 *
 * Records end at a newline outside CSV quotes (RFC 4180: a quoted field may contain newlines; `""` is an escaped
 * quote). JSONL records end at every newline (JSON escapes newlines inside strings). Blank lines are not rows.
 * Scanning works on bytes: in UTF-8, `\n` and `"` never occur inside a multi-byte character.
 */
import { jsonNestingDepth, MAX_INPUT_DEPTH } from '../parse';
import type { TabularFormat } from './job';

const NL = 0x0a;
const QUOTE = 0x22;

export interface RecordSpan {
  /** Byte offset of the record's first byte. */
  start: number;
  /** Byte offset just past the record's terminating newline (or the end of the file). */
  end: number;
}

/**
 * Incremental record-boundary scanner: feed chunks in order, then `end()`. Calls `onRecord` for every
 * non-blank record with its byte span.
 */
export class RecordScanner {
  private offset = 0;
  private recordStart = 0;
  private inQuote = false;
  private nonBlank = false;

  constructor(
    private readonly format: TabularFormat,
    private readonly onRecord: (span: RecordSpan) => void,
  ) {}

  push(chunk: Uint8Array): void {
    const csv = this.format === 'csv';
    for (let i = 0; i < chunk.length; i++) {
      const b = chunk[i];
      if (csv && b === QUOTE) {
        this.inQuote = !this.inQuote;
        this.nonBlank = true;
      } else if (b === NL && !this.inQuote) {
        const end = this.offset + i + 1;
        if (this.nonBlank) this.onRecord({ start: this.recordStart, end });
        this.recordStart = end;
        this.nonBlank = false;
      } else if (!this.nonBlank && b !== 0x0d && b !== 0x20 && b !== 0x09 && !(this.offset + i < 3 && isBomByte(b, this.offset + i))) {
        this.nonBlank = true;
      }
    }
    this.offset += chunk.length;
  }

  /** Flushes a last record without a trailing newline. Returns the total byte count. */
  end(): number {
    if (this.nonBlank) this.onRecord({ start: this.recordStart, end: this.offset });
    this.recordStart = this.offset;
    this.nonBlank = false;
    return this.offset;
  }
}

function isBomByte(b: number, pos: number): boolean {
  return (pos === 0 && b === 0xef) || (pos === 1 && b === 0xbb) || (pos === 2 && b === 0xbf);
}

/** One mini-batch's share of a tabular file: a contiguous byte range holding whole records. */
export interface RowRange {
  /** Byte range [start, end) of the data records (never includes the header). */
  start: number;
  end: number;
  /** 0-based index of the first data row in the file (header excluded). */
  firstRow: number;
  rowCount: number;
}

export interface TabularPartition {
  /** End offset of the CSV header record (0 when there is none). The header is bytes [0, headerEnd). */
  headerEnd: number;
  ranges: RowRange[];
  rowCount: number;
  size: number;
}

export type RangeLimit = { bytes: number } | { rows: number };

/**
 * Partitions one file into row ranges, fed record by record. A range closes before a record that would make
 * it exceed `limit.bytes` (a range always holds at least one record), or when it holds `limit.rows` records.
 */
export class TabularPartitioner {
  private readonly ranges: RowRange[] = [];
  private current: RowRange | null = null;
  private rows = 0;
  private headerEnd = 0;
  private sawHeader: boolean;
  readonly scanner: RecordScanner;

  constructor(format: TabularFormat, header: boolean, private readonly limit: RangeLimit) {
    this.sawHeader = !(header && format === 'csv');
    this.scanner = new RecordScanner(format, (span) => this.record(span));
  }

  private record(span: RecordSpan): void {
    if (!this.sawHeader) {
      this.sawHeader = true;
      this.headerEnd = span.end;
      return;
    }
    const c = this.current;
    const full =
      c !== null &&
      ('rows' in this.limit ? c.rowCount >= this.limit.rows : span.end - c.start > this.limit.bytes);
    if (c === null || full) {
      this.current = { start: span.start, end: span.end, firstRow: this.rows, rowCount: 1 };
      this.ranges.push(this.current);
    } else {
      c.end = span.end;
      c.rowCount++;
    }
    this.rows++;
  }

  finish(): TabularPartition {
    const size = this.scanner.end();
    return { headerEnd: this.headerEnd, ranges: this.ranges, rowCount: this.rows, size };
  }
}

/** Partitions an in-memory file (tests, small inputs). */
export function partitionTabularBuffer(data: Uint8Array, format: TabularFormat, header: boolean, limit: RangeLimit): TabularPartition {
  const p = new TabularPartitioner(format, header, limit);
  p.scanner.push(data);
  return p.finish();
}

/** Format of a tabular file: the job's `input_format`, else by extension (`.jsonl`/`.ndjson`/`.json` → jsonl). */
export function formatOf(blobName: string, declared?: TabularFormat): TabularFormat {
  if (declared) return declared;
  return /\.(jsonl|ndjson|json)$/i.test(blobName) ? 'jsonl' : 'csv';
}

// ---------------------------------------------------------------- parsing a range back into rows

/** Splits CSV text into records of fields (RFC 4180 quoting; CRLF or LF; blank lines skipped). */
export function parseCsv(text: string): string[][] {
  const records: string[][] = [];
  let fields: string[] = [];
  let field = '';
  let inQuote = false;
  let quotedOrData = false;
  const endRecord = () => {
    fields.push(field);
    if (!(fields.length === 1 && fields[0].trim() === '' && !quotedOrData)) records.push(fields);
    fields = [];
    field = '';
    quotedOrData = false;
  };
  for (let i = 0; i < text.length; i++) {
    const ch = text[i];
    if (inQuote) {
      if (ch === '"') {
        if (text[i + 1] === '"') {
          field += '"';
          i++;
        } else inQuote = false;
      } else field += ch;
    } else if (ch === '"') {
      inQuote = true;
      quotedOrData = true;
    } else if (ch === ',') {
      fields.push(field);
      field = '';
      quotedOrData = true;
    } else if (ch === '\n') {
      endRecord();
    } else if (ch === '\r') {
      // CR of CRLF (a lone CR inside a field is kept only when quoted)
    } else {
      field += ch;
      if (ch !== ' ' && ch !== '\t') quotedOrData = true;
    }
  }
  if (field !== '' || fields.length > 0 || quotedOrData) endRecord();
  return records;
}

/** A CSV cell as a JSON value: numbers become numbers, an empty cell null, everything else stays text. */
export function csvValue(cell: string): string | number | null {
  if (cell === '') return null;
  if (/^[-+]?(\d+\.?\d*|\.\d+)([eE][-+]?\d+)?$/.test(cell.trim())) {
    const n = Number(cell);
    if (Number.isFinite(n)) return n;
  }
  return cell;
}

/** The column names from a CSV header record (BOM stripped). */
export function parseCsvHeader(headerBytes: Uint8Array): string[] {
  const text = Buffer.from(headerBytes).toString('utf8').replace(/^\uFEFF/, '');
  const recs = parseCsv(text);
  return recs[0] ?? [];
}

export type Row = Record<string, unknown>;

/**
 * Parses the records of one range. CSV rows become objects keyed by the header's column names
 * (`column_1`, `column_2`, ... without a header); JSONL rows are the parsed JSON values.
 * Throws `{ code: 'InvalidTabularInput' }` on a malformed JSON line.
 */
export function parseRows(data: Uint8Array, format: TabularFormat, columns: string[] | null): unknown[] {
  const text = Buffer.from(data).toString('utf8').replace(/^\uFEFF/, '');
  if (format === 'jsonl') {
    const rows: unknown[] = [];
    for (const line of text.split('\n')) {
      if (line.trim() === '') continue;
      if (jsonNestingDepth(line, MAX_INPUT_DEPTH) > MAX_INPUT_DEPTH) {
        throw Object.assign(new Error(`a JSONL line is nested more than ${MAX_INPUT_DEPTH} levels deep`), { code: 'InvalidTabularInput' });
      }
      try {
        rows.push(JSON.parse(line));
      } catch (e) {
        throw Object.assign(new Error(`a JSONL line is not valid JSON: ${(e as Error).message}`), { code: 'InvalidTabularInput' });
      }
    }
    return rows;
  }
  return parseCsv(text).map((fields) => {
    const row: Row = {};
    const n = Math.max(fields.length, columns?.length ?? 0);
    for (let i = 0; i < n; i++) {
      const name = columns?.[i] ?? `column_${i + 1}`;
      row[name] = i < fields.length ? csvValue(fields[i]) : null;
    }
    return row;
  });
}
