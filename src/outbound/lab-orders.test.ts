import type { AccessPolicy, Device } from '@medplum/fhirtypes';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, test } from 'vitest';
import { LabExtension, readLabInterface } from './lab-orders.ts';

const ROOT = join(import.meta.dirname, '..', '..');
const json = <T>(path: string): T => JSON.parse(readFileSync(join(ROOT, path), 'utf8')) as T;

describe('readLabInterface', () => {
  test('reads the Acme lab Device of agent-config', () => {
    // As deployed: placeholders resolved to the target's ids.
    const text = readFileSync(join(ROOT, 'agent-config', 'device-acme-lab.json'), 'utf8').replace('{{Agent/agent}}', 'Agent/a1').replace('{{Organization/sender-acmelab}}', 'Organization/o1');
    const device = { ...(JSON.parse(text) as Device), id: 'd1' };
    expect(readLabInterface(device)).toEqual({
      lab: {
        device: 'Device/d1',
        agent: 'Agent/a1',
        lab: 'Organization/o1',
        messageType: 'ORM^O01',
        receiving: { application: 'ACMELAB', facility: 'ACME' },
        retryWindowMs: 72 * 3600_000,
        retryBaseMs: 30_000,
        settleMs: 15_000,
      },
    });
  });

  test('names what is missing', () => {
    expect(readLabInterface({ resourceType: 'Device', id: 'd2', url: 'http://x', extension: [{ url: LabExtension.messageType, valueString: 'ADT^A01' }] })).toEqual({
      problems: [
        `Device/d2: no ${LabExtension.agent} extension naming the Agent`,
        `Device/d2: no ${LabExtension.lab} extension naming the lab Organization`,
        "Device/d2: url must be the lab's mllp:// address",
        `Device/d2: ${LabExtension.messageType} must be ORM^O01 or OML^O21`,
      ],
    });
  });

  test('the bot reads orders and writes only its own Tasks and locks', () => {
    const policy = json<AccessPolicy>('access-policies/bot-lab-orders.json');
    const writable = (policy.resource ?? []).filter((r) => !r.readonly).map((r) => r.resourceType).sort();
    expect(writable).toEqual(['Basic', 'Task']);
  });

  test('the example lab Subscriptions name the lab Device the bot reads', () => {
    for (const name of ['lab-orders-acme-create', 'lab-orders-acme-update']) {
      const subscription = json<{ extension: { url: string; valueReference?: { reference: string } }[] }>(`subscriptions/${name}.json`);
      expect(subscription.extension.find((e) => e.url === LabExtension.device)?.valueReference?.reference).toBe('{{Device/device-acme-lab}}');
    }
  });
});
