import type { MedplumClient } from '@medplum/core';
import { expect } from 'vitest';
import type { LedgerCounts } from '../../src/inbound/stats.ts';
import { ledgerStats } from '../../src/inbound/stats.ts';

/**
 * @param client - A reader of the ledger.
 * @returns The ledger's totals, after checking that they add up.
 */
export async function ledgerTotals(client: MedplumClient): Promise<LedgerCounts> {
  const stats = await ledgerStats(client);
  expect(stats.invariantHolds).toBe(true);
  return stats.total;
}

/**
 * @param after - Totals after.
 * @param before - Totals before.
 * @returns The counts that changed, by how much.
 */
export function changedCounts(after: LedgerCounts, before: LedgerCounts): Partial<LedgerCounts> {
  const result: Partial<LedgerCounts> = {};
  for (const key of Object.keys(after) as (keyof LedgerCounts)[]) {
    if (after[key] !== before[key]) {
      result[key] = after[key] - before[key];
    }
  }
  return result;
}
