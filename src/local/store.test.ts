import type { WithId } from '@medplum/core';
import type { Patient, Resource } from '@medplum/fhirtypes';
import { describe, expect, test } from 'vitest';
import type { ResourceChange, StoredVersion } from './store.ts';
import { ResourceStore } from './store.ts';

let versionCounter = 0;

function version(id: string, family: string): StoredVersion {
  versionCounter++;
  const resource: WithId<Patient> = {
    resourceType: 'Patient',
    id,
    name: [{ family }],
    meta: { versionId: 'v' + versionCounter, lastUpdated: new Date().toISOString() },
  };
  return { resource, deleted: false };
}

function write(store: ResourceStore, id: string, family: string): StoredVersion {
  const v = version(id, family);
  const previous = store.latest('Patient', id);
  store.append(v, {
    interaction: previous ? 'update' : 'create',
    resource: v.resource,
    previous: previous?.resource,
  });
  return v;
}

function familyOf(v: StoredVersion | undefined): string | undefined {
  return (v?.resource as Patient | undefined)?.name?.[0]?.family;
}

/** Resolves after the current macrotask queue has drained, so other async work can interleave. */
function tick(): Promise<void> {
  return new Promise((resolve) => setImmediate(resolve));
}

describe('ResourceStore transactions', () => {
  test('writes are visible inside the transaction and invisible outside until commit', async () => {
    const store = new ResourceStore();
    let release!: () => void;
    const gate = new Promise<void>((resolve) => {
      release = resolve;
    });
    let seenInside: string | undefined;
    const running = store.transaction(async () => {
      write(store, 'p1', 'Inside');
      seenInside = familyOf(store.latest('Patient', 'p1'));
      await gate;
    });
    await tick();
    expect(seenInside).toBe('Inside');
    // Another reader, outside the transaction, sees nothing yet.
    expect(store.latest('Patient', 'p1')).toBeUndefined();
    expect(store.ids('Patient')).toEqual([]);
    expect(store.history('Patient', 'p1')).toEqual([]);
    expect(store.inTransaction()).toBe(false);

    release();
    await running;
    expect(familyOf(store.latest('Patient', 'p1'))).toBe('Inside');
    expect(store.ids('Patient')).toEqual(['p1']);
    expect(store.resourceTypes()).toEqual(['Patient']);
  });

  test('an error rolls back every write and emits no change event', async () => {
    const store = new ResourceStore();
    const events: ResourceChange[][] = [];
    store.onCommit((changes) => events.push([...changes]));
    await store.transaction(async () => {
      write(store, 'keep', 'Original');
    });
    expect(events).toHaveLength(1);

    await expect(
      store.transaction(async () => {
        write(store, 'keep', 'Changed');
        write(store, 'new', 'New');
        await tick();
        throw new Error('boom');
      })
    ).rejects.toThrow('boom');

    expect(familyOf(store.latest('Patient', 'keep'))).toBe('Original');
    expect(store.history('Patient', 'keep')).toHaveLength(1);
    expect(store.latest('Patient', 'new')).toBeUndefined();
    expect(store.ids('Patient')).toEqual(['keep']);
    expect(events).toHaveLength(1);
  });

  test('append outside a transaction is refused', () => {
    const store = new ResourceStore();
    expect(() => write(store, 'p', 'X')).toThrow(/outside a transaction/);
  });

  test('nested transactions join the enclosing one', async () => {
    const store = new ResourceStore();
    const events: ResourceChange[][] = [];
    store.onCommit((changes) => events.push([...changes]));

    await store.transaction(async () => {
      write(store, 'a', 'A');
      await store.transaction(async () => {
        // The inner transaction sees the outer one's uncommitted write...
        expect(familyOf(store.latest('Patient', 'a'))).toBe('A');
        write(store, 'b', 'B');
      });
      // ...and its own write is still uncommitted: one commit, one event, at the end.
      expect(events).toHaveLength(0);
      expect(familyOf(store.latest('Patient', 'b'))).toBe('B');
    });
    expect(events).toHaveLength(1);
    expect(events[0].map((c) => c.resource.id)).toEqual(['a', 'b']);

    // An error in a nested transaction aborts the whole enclosing transaction.
    await expect(
      store.transaction(async () => {
        write(store, 'c', 'C');
        await store.transaction(async () => {
          write(store, 'd', 'D');
          throw new Error('inner');
        });
      })
    ).rejects.toThrow('inner');
    expect(store.latest('Patient', 'c')).toBeUndefined();
    expect(store.latest('Patient', 'd')).toBeUndefined();
    expect(events).toHaveLength(1);
  });

  test('concurrent transactions are serialized: no lost update on read-modify-write', async () => {
    const store = new ResourceStore();
    const counter = (v: StoredVersion | undefined): number => Number(familyOf(v) ?? '0');
    await store.transaction(async () => {
      write(store, 'counter', '0');
    });

    const increment = (): Promise<void> =>
      store.transaction(async () => {
        const current = counter(store.latest('Patient', 'counter'));
        // Yield between the read and the write: without the writer lock, the others would read the same value.
        await tick();
        write(store, 'counter', String(current + 1));
      });
    await Promise.all(Array.from({ length: 10 }, () => increment()));

    expect(counter(store.latest('Patient', 'counter'))).toBe(10);
    expect(store.history('Patient', 'counter')).toHaveLength(11);
  });

  test('a failed transaction releases the lock for the next one', async () => {
    const store = new ResourceStore();
    const failing = store.transaction(async () => {
      await tick();
      throw new Error('first fails');
    });
    const next = store.transaction(async () => {
      write(store, 'after', 'After');
      return 'done';
    });
    await expect(failing).rejects.toThrow('first fails');
    await expect(next).resolves.toBe('done');
    expect(familyOf(store.latest('Patient', 'after'))).toBe('After');
  });

  test('commit listeners receive the changes in write order, after the data is visible', async () => {
    const store = new ResourceStore();
    const received: { interaction: string; id: string; family?: string; previousFamily?: string }[] = [];
    const visibleAtNotify: (string | undefined)[] = [];
    store.onCommit((changes) => {
      for (const c of changes) {
        received.push({
          interaction: c.interaction,
          id: c.resource.id,
          family: (c.resource as Patient).name?.[0]?.family,
          previousFamily: (c.previous as Patient | undefined)?.name?.[0]?.family,
        });
        visibleAtNotify.push(familyOf(store.latest('Patient', c.resource.id)));
      }
    });
    const second: ResourceChange[][] = [];
    store.onCommit((changes) => second.push([...changes]));

    await store.transaction(async () => {
      write(store, 'x', 'X1');
      write(store, 'y', 'Y1');
      write(store, 'x', 'X2');
      const last = store.latest('Patient', 'y') as StoredVersion;
      store.append(
        { resource: { ...(last.resource as WithId<Resource>) }, deleted: true },
        { interaction: 'delete', resource: last.resource, previous: last.resource }
      );
    });

    expect(received).toEqual([
      { interaction: 'create', id: 'x', family: 'X1', previousFamily: undefined },
      { interaction: 'create', id: 'y', family: 'Y1', previousFamily: undefined },
      { interaction: 'update', id: 'x', family: 'X2', previousFamily: 'X1' },
      { interaction: 'delete', id: 'y', family: 'Y1', previousFamily: 'Y1' },
    ]);
    expect(visibleAtNotify).toEqual(['X2', 'Y1', 'X2', 'Y1']);
    expect(store.latest('Patient', 'y')?.deleted).toBe(true);
    // Every listener gets the same batch, once.
    expect(second).toHaveLength(1);
    expect(second[0]).toHaveLength(4);

    // Transactions commit (and notify) in the order they acquired the lock.
    const order: string[] = [];
    store.onCommit((changes) => order.push(...changes.map((c) => c.resource.id)));
    await Promise.all([
      store.transaction(async () => {
        await tick();
        write(store, 'first', 'F');
      }),
      store.transaction(async () => {
        write(store, 'second', 'S');
      }),
    ]);
    expect(order).toEqual(['first', 'second']);
  });

  test('history lists versions oldest first, including uncommitted ones inside the transaction', async () => {
    const store = new ResourceStore();
    await store.transaction(async () => {
      write(store, 'h', 'One');
    });
    await store.transaction(async () => {
      write(store, 'h', 'Two');
      expect(store.history('Patient', 'h').map(familyOf)).toEqual(['One', 'Two']);
    });
    expect(store.history('Patient', 'h').map(familyOf)).toEqual(['One', 'Two']);
  });
});
