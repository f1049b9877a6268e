import type { Basic } from '@medplum/fhirtypes';
import { describe, expect, test } from 'vitest';
import { useLocalAdmin } from '../../test/support/local-admin.ts';
import { acquireMergeLock, isMergeLocked, LOCK_STALE_MS, releaseMergeLock } from './merge-lock.ts';

const admin = useLocalAdmin();

describe('merge lock', () => {
  test('one holder per patient; released, it can be taken again', async () => {
    const first = await acquireMergeLock(admin.medplum, 'p-lock-1', 't1');
    expect(first).toBeDefined();
    expect(await acquireMergeLock(admin.medplum, 'p-lock-1', 't2')).toBeUndefined();
    // The same Task run again (a re-drive while it runs) is another run: it waits too.
    expect(await acquireMergeLock(admin.medplum, 'p-lock-1', 't1')).toBeUndefined();
    expect(await acquireMergeLock(admin.medplum, 'p-lock-2', 't3')).toBeDefined();
    expect(await isMergeLocked(admin.medplum, 'p-lock-1')).toBe(true);
    await releaseMergeLock(admin.medplum, first as NonNullable<typeof first>);
    expect(await isMergeLocked(admin.medplum, 'p-lock-1')).toBe(false);
    expect(await acquireMergeLock(admin.medplum, 'p-lock-1', 't2')).toBeDefined();
  });

  test('concurrent attempts: exactly one wins', async () => {
    const results = await Promise.all(Array.from({ length: 6 }, (_, i) => acquireMergeLock(admin.medplum, 'p-lock-race', `t${i}`)));
    expect(results.filter(Boolean)).toHaveLength(1);
  });

  test('a stale lock (its run died) is taken over; the old holder then releases nothing', async () => {
    const stale = (await acquireMergeLock(admin.medplum, 'p-lock-stale', 'old')) as Basic & { id: string };
    const old = new Date(Date.now() - LOCK_STALE_MS - 1000).toISOString();
    await admin.medplum.updateResource<Basic>({ ...stale, extension: [{ ...stale.extension?.[0], url: stale.extension?.[0].url as string, valueInstant: old }] });
    const taken = await acquireMergeLock(admin.medplum, 'p-lock-stale', 'new');
    expect(taken).toBeDefined();
    await releaseMergeLock(admin.medplum, stale);
    expect(await isMergeLocked(admin.medplum, 'p-lock-stale')).toBe(true);
    await releaseMergeLock(admin.medplum, taken as NonNullable<typeof taken>);
    expect(await isMergeLocked(admin.medplum, 'p-lock-stale')).toBe(false);
  });
});
