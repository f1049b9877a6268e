/**
 * A small RFC 4180 CSV reader for partner files (rosters). Pure: text in, cells out. It reports
 * malformed records instead of guessing: a record read wrongly would put one patient's values in
 * another column (a surname as a birth date), so a record that cannot be read exactly is skipped
 * and named by its line.
 */

/** One data record. */
export interface CsvRow {
  /** Physical line (1-based) the record starts on; a quoted field can span several lines. */
  readonly line: number;
  /** The fields as sent (quotes removed, `""` unescaped, no trimming). */
  readonly cells: string[];
}

/** A record that could not be read; it is not in `rows`. Never contains cell values. */
export interface CsvProblem {
  readonly line: number;
  readonly message: string;
}

/** What {@link parseCsv} reads. */
export interface CsvTable {
  /** The first record (empty when the text has none or it could not be read). */
  readonly header: string[];
  /** The line the header is on (1 unless empty lines come first). */
  readonly headerLine: number;
  /** The records after the header that have as many cells as the header. */
  readonly rows: CsvRow[];
  readonly problems: CsvProblem[];
}

interface CsvRecord {
  readonly line: number;
  readonly cells: string[];
  readonly problem?: string;
  /** An empty physical line (no characters at all). */
  readonly blank: boolean;
}

/**
 * Parses CSV text (RFC 4180): comma-separated fields, fields in double quotes may hold commas,
 * line breaks and `""` (an escaped quote); records end with CRLF, LF or CR. A leading UTF-8 BOM is
 * dropped. Empty lines (a trailing one included) are skipped. The first record is the header;
 * every later record must have as many cells as the header.
 * @param text - The file's text.
 * @returns The header, the readable rows and the problems (unclosed quote, text after a closing
 * quote, a quote inside an unquoted field, a wrong number of cells).
 */
export function parseCsv(text: string): CsvTable {
  const problems: CsvProblem[] = [];
  const rows: CsvRow[] = [];
  let header: string[] | undefined;
  let headerLine = 1;
  for (const record of readRecords(text.startsWith('\uFEFF') ? text.slice(1) : text)) {
    if (record.blank) {
      continue;
    }
    if (record.problem) {
      problems.push({ line: record.line, message: record.problem });
      if (header === undefined) {
        // Without a readable header no column can be named: nothing else is read.
        return { header: [], headerLine: record.line, rows: [], problems };
      }
      continue;
    }
    if (header === undefined) {
      header = record.cells;
      headerLine = record.line;
    } else if (record.cells.length !== header.length) {
      problems.push({ line: record.line, message: `the row has ${record.cells.length} cells, the header ${header.length}` });
    } else {
      rows.push({ line: record.line, cells: record.cells });
    }
  }
  return { header: header ?? [], headerLine, rows, problems };
}

/** Splits the text into records, counting physical lines so each record knows where it starts. */
function* readRecords(text: string): Generator<CsvRecord> {
  const n = text.length;
  let i = 0;
  let line = 1;
  const isBreak = (c: string | undefined): boolean => c === '\n' || c === '\r';
  while (i < n) {
    const start = line;
    const blank = isBreak(text[i]);
    const cells: string[] = [];
    let problem: string | undefined;
    for (;;) {
      let cell = '';
      if (text[i] === '"') {
        i++;
        let closed = false;
        while (i < n) {
          const c = text[i];
          if (c === '"') {
            if (text[i + 1] === '"') {
              cell += '"';
              i += 2;
              continue;
            }
            i++;
            closed = true;
            break;
          }
          if (c === '\r' && text[i + 1] === '\n') {
            cell += '\r\n';
            i += 2;
            line++;
            continue;
          }
          if (isBreak(c)) {
            line++;
          }
          cell += c;
          i++;
        }
        if (!closed) {
          problem ??= 'a quoted field is not closed';
        } else if (i < n && text[i] !== ',' && !isBreak(text[i])) {
          problem ??= 'text after the closing quote of a field';
          while (i < n && text[i] !== ',' && !isBreak(text[i])) {
            i++;
          }
        }
      } else {
        while (i < n && text[i] !== ',' && !isBreak(text[i])) {
          if (text[i] === '"') {
            problem ??= 'a quote inside an unquoted field';
          }
          cell += text[i];
          i++;
        }
      }
      cells.push(cell);
      if (text[i] === ',') {
        i++;
        continue;
      }
      break;
    }
    if (text[i] === '\r') {
      i += text[i + 1] === '\n' ? 2 : 1;
      line++;
    } else if (text[i] === '\n') {
      i++;
      line++;
    }
    yield { line: start, cells, blank, ...(problem ? { problem } : {}) };
  }
}

/**
 * Writes CSV (RFC 4180): a field holding a comma, a double quote or a line break is quoted, with
 * its quotes doubled; records end with CRLF.
 * @param rows - The records, the header first.
 * @returns The CSV text.
 */
export function formatCsv(rows: readonly (readonly string[])[]): string {
  const field = (value: string): string => (/[",\r\n]/.test(value) ? `"${value.replace(/"/g, '""')}"` : value);
  return rows.map((row) => row.map(field).join(',')).join('\r\n') + '\r\n';
}
