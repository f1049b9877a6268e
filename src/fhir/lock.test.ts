import type { Basic } from '@medplum/fhirtypes';
import { describe, expect, test } from 'vitest';
import { useLocalAdmin } from '../../test/support/local-admin.ts';
import { acquireLock, isLocked, LOCK_STALE_MS, LockKind, releaseLock } from './lock.ts';

const admin = useLocalAdmin();

describe('locks', () => {
  test('one holder per patient; released, it can be taken again', async () => {
    const first = await acquireLock(admin.medplum, LockKind.metriportMerge, 'p-lock-1', 'Task/t1');
    expect(first).toBeDefined();
    expect(await acquireLock(admin.medplum, LockKind.metriportMerge, 'p-lock-1', 'Task/t2')).toBeUndefined();
    // The same holder again (a Task re-driven while it runs) is another run: it waits too.
    expect(await acquireLock(admin.medplum, LockKind.metriportMerge, 'p-lock-1', 'Task/t1')).toBeUndefined();
    expect(await acquireLock(admin.medplum, LockKind.metriportMerge, 'p-lock-2', 'Task/t3')).toBeDefined();
    // Kinds are separate: the same key of another kind is another lock.
    expect(await acquireLock(admin.medplum, LockKind.sftpSource, 'p-lock-1', 'Bot/b1')).toBeDefined();
    expect(await isLocked(admin.medplum, LockKind.metriportMerge, 'p-lock-1')).toBe(true);
    await releaseLock(admin.medplum, first as NonNullable<typeof first>);
    expect(await isLocked(admin.medplum, LockKind.metriportMerge, 'p-lock-1')).toBe(false);
    expect(await acquireLock(admin.medplum, LockKind.metriportMerge, 'p-lock-1', 'Task/t2')).toBeDefined();
  });

  test('concurrent attempts: exactly one wins', async () => {
    const results = await Promise.all(Array.from({ length: 6 }, (_, i) => acquireLock(admin.medplum, LockKind.metriportMerge, 'p-lock-race', `Task/t${i}`)));
    expect(results.filter(Boolean)).toHaveLength(1);
  });

  test('a stale lock (its run died) is taken over; the old holder then releases nothing', async () => {
    const stale = (await acquireLock(admin.medplum, LockKind.metriportMerge, 'p-lock-stale', 'Task/old')) as Basic & { id: string };
    const old = new Date(Date.now() - LOCK_STALE_MS - 1000).toISOString();
    await admin.medplum.updateResource<Basic>({ ...stale, extension: [{ ...stale.extension?.[0], url: stale.extension?.[0].url as string, valueInstant: old }] });
    const taken = await acquireLock(admin.medplum, LockKind.metriportMerge, 'p-lock-stale', 'Task/new');
    expect(taken).toBeDefined();
    await releaseLock(admin.medplum, stale);
    expect(await isLocked(admin.medplum, LockKind.metriportMerge, 'p-lock-stale')).toBe(true);
    await releaseLock(admin.medplum, taken as NonNullable<typeof taken>);
    expect(await isLocked(admin.medplum, LockKind.metriportMerge, 'p-lock-stale')).toBe(false);
  });

  test('concurrent takeovers of a stale lock: exactly one wins, the others find it taken', async () => {
    const stale = (await acquireLock(admin.medplum, LockKind.metriportMerge, 'p-lock-stale-race', 'Task/old')) as Basic & { id: string };
    const old = new Date(Date.now() - LOCK_STALE_MS - 1000).toISOString();
    await admin.medplum.updateResource<Basic>({ ...stale, extension: [{ ...stale.extension?.[0], url: stale.extension?.[0].url as string, valueInstant: old }] });
    const results = await Promise.all(
      Array.from({ length: 4 }, (_, i) => acquireLock(admin.medplum, LockKind.metriportMerge, 'p-lock-stale-race', `Task/new${i}`))
    );
    expect(results.filter(Boolean)).toHaveLength(1);
  });
});
