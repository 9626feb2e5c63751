import { parseCsv, parseRows, parseCsvHeader, partitionTabularBuffer, formatOf, RecordScanner, type RecordSpan } from '../../../shared/batch/tabular';

const enc = (s: string) => Buffer.from(s, 'utf8');

function rowsOf(data: Buffer, format: 'csv' | 'jsonl', header: boolean, limit: { bytes: number } | { rows: number }) {
  const p = partitionTabularBuffer(data, format, header, limit);
  const cols = p.headerEnd > 0 ? parseCsvHeader(data.subarray(0, p.headerEnd)) : null;
  return { p, ranges: p.ranges.map((r) => parseRows(data.subarray(r.start, r.end), format, cols)) };
}

describe('record scanning', () => {
  test('CSV: quoted newlines, CRLF, blank lines, no trailing newline', () => {
    const text = 'a,b\r\n1,"x\ny"\r\n\r\n2,"q""uote"\n   \n3,z';
    const spans: RecordSpan[] = [];
    const s = new RecordScanner('csv', (sp) => spans.push(sp));
    // feed byte by byte: boundaries must not depend on chunking
    for (const b of enc(text)) s.push(Uint8Array.of(b));
    expect(s.end()).toBe(enc(text).length);
    expect(spans.map((sp) => text.slice(sp.start, sp.end))).toEqual(['a,b\r\n', '1,"x\ny"\r\n', '2,"q""uote"\n', '3,z']);
  });

  test('JSONL: every newline ends a record, quotes do not matter', () => {
    const text = '{"a":"he said \\"hi\\""}\n\n{"a":2}\n';
    const spans: RecordSpan[] = [];
    const s = new RecordScanner('jsonl', (sp) => spans.push(sp));
    s.push(enc(text));
    s.end();
    expect(spans.length).toBe(2);
  });
});

describe('partitioning one file', () => {
  const csv = enc('id,name\n' + Array.from({ length: 10 }, (_, i) => `${i},n${i}\n`).join(''));

  test('by rows: ranges of N rows, header excluded, row indexes', () => {
    const { p, ranges } = rowsOf(csv, 'csv', true, { rows: 4 });
    expect(p.headerEnd).toBe('id,name\n'.length);
    expect(p.rowCount).toBe(10);
    expect(p.ranges.map((r) => [r.firstRow, r.rowCount])).toEqual([[0, 4], [4, 4], [8, 2]]);
    expect(ranges[0][0]).toEqual({ id: 0, name: 'n0' });
    expect(ranges[2][1]).toEqual({ id: 9, name: 'n9' });
    // contiguous byte ranges covering all data
    expect(p.ranges[0].start).toBe(p.headerEnd);
    for (let i = 1; i < p.ranges.length; i++) expect(p.ranges[i].start).toBe(p.ranges[i - 1].end);
    expect(p.ranges[2].end).toBe(csv.length);
  });

  test('by bytes: a range never exceeds the limit unless one row is bigger', () => {
    // each data row is 5 bytes ("0,n0\n")
    const { p } = rowsOf(csv, 'csv', true, { bytes: 12 });
    expect(p.ranges.map((r) => r.rowCount)).toEqual([2, 2, 2, 2, 2]);
    for (const r of p.ranges) expect(r.end - r.start).toBeLessThanOrEqual(12);
    const big = rowsOf(csv, 'csv', true, { bytes: 3 }).p;
    expect(big.ranges.length).toBe(10); // at least one row per range
  });

  test('row counts from the scanner equal the rows parsed back, for any split', () => {
    const tricky = enc('\uFEFFh1,h2\r\n"a,1","multi\nline"\r\n\r\n,\n"",x\n  \nlast,row');
    for (const limit of [{ rows: 1 }, { rows: 2 }, { bytes: 1 }, { bytes: 15 }, { bytes: 1 << 20 }]) {
      const { p, ranges } = rowsOf(tricky, 'csv', true, limit);
      expect(p.rowCount).toBe(4);
      ranges.forEach((rows, i) => expect(rows.length).toBe(p.ranges[i].rowCount));
    }
    const { ranges } = rowsOf(tricky, 'csv', true, { rows: 10 });
    expect(ranges[0]).toEqual([
      { h1: 'a,1', h2: 'multi\nline' },
      { h1: null, h2: null },
      { h1: null, h2: 'x' },
      { h1: 'last', h2: 'row' },
    ]);
  });

  test('no header: column_N names; header-only and empty files have no rows', () => {
    const { ranges } = rowsOf(enc('1,2\n3,4\n'), 'csv', false, { rows: 10 });
    expect(ranges[0]).toEqual([{ column_1: 1, column_2: 2 }, { column_1: 3, column_2: 4 }]);
    expect(partitionTabularBuffer(enc('a,b\n'), 'csv', true, { rows: 5 })).toMatchObject({ rowCount: 0, ranges: [] });
    expect(partitionTabularBuffer(enc(''), 'csv', true, { rows: 5 })).toMatchObject({ rowCount: 0, ranges: [], headerEnd: 0 });
  });

  test('JSONL ranges parse to JSON values; bad lines are InvalidTabularInput', () => {
    const data = enc('{"x":1}\n{"x":2}\n\n{"x":3}\n');
    const { p, ranges } = rowsOf(data, 'jsonl', true, { rows: 2 });
    expect(p.headerEnd).toBe(0);
    expect(ranges).toEqual([[{ x: 1 }, { x: 2 }], [{ x: 3 }]]);
    expect(() => parseRows(enc('{"x":\n'), 'jsonl', null)).toThrow(expect.objectContaining({ code: 'InvalidTabularInput' }));
  });

  test('CSV values: numbers, empty → null, text kept (RFC 4180 quotes)', () => {
    expect(parseCsv('a,"b ""c""",3\n')).toEqual([['a', 'b "c"', '3']]);
    expect(parseRows(enc('1.5,-2,1e3,abc,,007x\n'), 'csv', null)).toEqual([
      { column_1: 1.5, column_2: -2, column_3: 1000, column_4: 'abc', column_5: null, column_6: '007x' },
    ]);
  });

  test('format by extension unless declared', () => {
    expect(formatOf('a/b.jsonl')).toBe('jsonl');
    expect(formatOf('a/b.NDJSON')).toBe('jsonl');
    expect(formatOf('a/b.csv')).toBe('csv');
    expect(formatOf('a/b.txt', 'jsonl')).toBe('jsonl');
  });
});
