import type { Patient } from '@medplum/fhirtypes';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, test } from 'vitest';
import { useLocalAdmin } from '../../test/support/local-admin.ts';
import { commitPlan } from '../fhir/writer.ts';
import { readHl7Message, readMessageHeader } from '../hl7/message.ts';
import { readMappingConfigFiles } from '../mapping/config-files.ts';
import type { MappingConfig } from '../mapping/context.ts';
import { MappingContext } from '../mapping/context.ts';
import { findMessageMapper } from '../mapping/messages/registry.ts';
import type { MessagePlan } from '../mapping/plan.ts';
import { readRoster } from './roster.ts';
import { AETNA_PAYER_NAMING_SYSTEM } from '../../test/support/roster-fixtures.ts';

const ROOT = join(import.meta.dirname, '..', '..');
const admin = useLocalAdmin();

const payer = AETNA_PAYER_NAMING_SYSTEM;
const seed = readMappingConfigFiles(join(ROOT, 'seed'));
const config: MappingConfig = { ...seed, namingSystems: [...seed.namingSystems, payer] };

const ROSTER = [
  'mrn,mrn_authority,family,given,birth_date,sex,payer_id,payer_id_authority,payer_name,member_id,coverage_start',
  '100234,NSH,Kowalski,Anna Marie,1968-04-12,F,AETNA60054,AETNA,Aetna,W2298871401,2025-07-01',
].join('\r\n');

function rosterPlan(): MessagePlan {
  const plan = readRoster(ROSTER, { config, sender: 'acme' }).rows[0].plan;
  if (!plan) {
    throw new Error('the roster row did not map');
  }
  return plan;
}

describe('roster and HL7 through the writer', () => {
  test('a roster row after an ADT message updates the same Patient, Coverage and payer', async () => {
    const er7 = readFileSync(join(ROOT, 'test', 'corpus', 'adt', 'northside-a01-admit.hl7'), 'utf8').replace('|AETNA60054|', '|AETNA60054^^^AETNA|');
    const message = readHl7Message(er7);
    const header = readMessageHeader(message);
    const hl7Plan = findMessageMapper(header)?.(message, new MappingContext(header, config)) as MessagePlan;
    const first = await commitPlan(admin.medplum, hl7Plan, { eventTime: '2026-11-13T08:00:00Z' });
    expect(first.created).toContain('Patient');

    const second = await commitPlan(admin.medplum, rosterPlan(), { eventTime: '2026-11-14T08:00:00Z' });
    expect(second.created).toEqual([]);
    for (const key of Object.keys(second.references)) {
      expect(second.references[key], key).toBe(first.references[key]);
    }
    const patients = await admin.medplum.searchResources('Patient', { identifier: 'https://northside.example.org/fhir/sid/mrn|100234' });
    expect(patients).toHaveLength(1);
    // The roster's demographics overlay; what it does not carry (the EMPI id, language) is kept.
    const patient = patients[0] as Patient;
    expect(patient.name).toEqual([{ family: 'Kowalski', given: ['Anna', 'Marie'] }]);
    expect(patient.identifier?.map((i) => i.value)).toEqual(['100234', 'E9000123']);
    expect(patient.communication).toBeDefined();

    const again = await commitPlan(admin.medplum, rosterPlan(), { eventTime: '2026-11-14T08:00:00Z' });
    expect(again.created).toEqual([]);
    expect(again.updated).toEqual([]);
  });
});
