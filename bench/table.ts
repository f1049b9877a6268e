/**
 * Formats a rate or duration for a benchmark table: whole numbers with separators from 100 up,
 * one decimal below.
 * @param n - The number.
 * @returns The text.
 */
export function fmt(n: number): string {
  return n >= 100 ? Math.round(n).toLocaleString('en-US') : n.toFixed(1);
}

/**
 * Prints a Markdown table (first column left-aligned, the others right-aligned), ready to paste
 * into `docs/benchmarks.md`.
 * @param title - The line above the table.
 * @param header - Column names.
 * @param rows - Cells, one array per row.
 */
export function printTable(title: string, header: readonly string[], rows: readonly (readonly string[])[]): void {
  const table = [header, ...rows];
  const widths = header.map((_, i) => Math.max(...table.map((row) => row[i]?.length ?? 0)));
  console.log(title);
  console.log('');
  table.forEach((row, i) => {
    console.log('| ' + row.map((cell, j) => (j === 0 ? cell.padEnd(widths[j]) : cell.padStart(widths[j]))).join(' | ') + ' |');
    if (i === 0) {
      console.log('|' + widths.map((w, j) => (j === 0 ? '-'.repeat(w + 2) : '-'.repeat(w + 1) + ':')).join('|') + '|');
    }
  });
  console.log('');
}
