import type { Hl7Segment } from '@medplum/core';
import type { Immunization, Observation } from '@medplum/fhirtypes';
import { join } from 'node:path';
import { describe, expect, test } from 'vitest';
import { readHl7Message, readMessageHeader } from '../../hl7/message.ts';
import { readMappingConfigFiles } from '../config-files.ts';
import { MappingContext } from '../context.ts';
import type { ResourcePlan } from '../plan.ts';
import { applyImmunizationObservations, obxValue } from './immunization-obx.ts';

const config = readMappingConfigFiles(join(import.meta.dirname, '..', '..', '..', 'seed'));

/** Applies the OBX (and NTE) lines to a bare Immunization plan, as in a STATEIIS VXU. */
function apply(lines: string): { immunization: ResourcePlan<Immunization>; observations: ResourcePlan<Observation>[]; ctx: MappingContext } {
  const message = readHl7Message(`MSH|^~\\&|IIS|STATEIIS|HUB|HUB|20240312101530||VXU^V04^VXU_V04|1|P|2.5.1\r${lines.trim().split('\n').join('\r')}`);
  const ctx = new MappingContext(readMessageHeader(message), config);
  const segments: { obx: Hl7Segment; ntes: Hl7Segment[]; sequence: number }[] = [];
  for (const segment of message.segments) {
    if (segment.name === 'OBX') {
      segments.push({ obx: segment, ntes: [], sequence: segments.length + 1 });
    } else if (segment.name === 'NTE') {
      segments.at(-1)?.ntes.push(segment);
    }
  }
  const identifier = { system: 'https://iis.example.org/sid/dose', value: 'IZ-1' };
  const immunization: ResourcePlan<Immunization> = {
    key: 'Immunization/1',
    resource: { resourceType: 'Immunization', status: 'completed', vaccineCode: { text: 'DTaP' }, patient: { reference: 'local:Patient' }, occurrenceDateTime: '2024-03-11' },
    identifiers: [identifier],
    merge: 'overlay',
  };
  const plans: ResourcePlan[] = [];
  applyImmunizationObservations(segments, immunization, 'Patient', ctx, plans);
  return { immunization, observations: plans as ResourcePlan<Observation>[], ctx };
}

describe('applyImmunizationObservations', () => {
  test('eligibility, funding source and a VIS group set Immunization elements, not Observations', () => {
    const { immunization, observations } = apply(`
OBX|1|CE|64994-7^Vaccine funding program eligibility category^LN|1|V02^VFC eligible - Medicaid^HL70064||||||F
OBX|2|CE|30963-3^Vaccine funding source^LN|2|VXC50^Public^CDCPHINVS||||||F
OBX|3|CE|69764-9^Document type^LN|3|253088698300003511070517^DTaP VIS^cdcgs1vis||||||F
OBX|4|DT|29768-9^Date Vaccine Information Statement Published^LN|3|20070517||||||F
OBX|5|TS|29769-7^Date Vaccine Information Statement Presented^LN|3|20240311||||||F`);
    expect(observations).toEqual([]);
    expect(immunization.resource).toMatchObject({
      programEligibility: [{ coding: [{ system: 'http://terminology.hl7.org/CodeSystem/v2-0064', code: 'V02' }] }],
      fundingSource: { coding: [{ code: 'VXC50' }] },
      education: [{ documentType: '253088698300003511070517', publicationDate: '2007-05-17', presentationDate: '2024-03-11' }],
    });
  });

  test('VIS dates without a document type (older style) are Observations', () => {
    const { immunization, observations } = apply(`
OBX|1|CE|30956-7^Vaccine type^LN|1|107^DTaP^CVX||||||F
OBX|2|TS|29768-9^VIS published^LN|1|20070517||||||F`);
    expect(immunization.resource.education).toBeUndefined();
    expect(observations.map((o) => o.resource.code.coding?.[0].code)).toEqual(['30956-7', '29768-9']);
    expect(observations[1].resource.valueDateTime).toBe('2007-05-17');
  });

  test('a reaction is an Observation part of the Immunization, listed in Immunization.reaction', () => {
    const { immunization, observations } = apply(`
OBX|1|CE|31044-1^Reaction^LN|1|39579001^Anaphylaxis^SCT||||||F|||20241104112000
NTE|1||Hives after 10 min;\\.br\\epinephrine given.`);
    expect(observations).toHaveLength(1);
    const [reaction] = observations;
    expect(reaction.key).toBe('Observation/1');
    expect(reaction.resource).toMatchObject({
      status: 'final',
      subject: { reference: 'local:Patient' },
      partOf: [{ reference: 'local:Immunization/1' }],
      valueCodeableConcept: { coding: [{ system: 'http://snomed.info/sct', code: '39579001' }] },
      effectiveDateTime: '2024-11-04T11:20:00-07:00',
      note: [{ text: 'Hives after 10 min;\nepinephrine given.' }],
    });
    expect(reaction.identifiers[0].value).toBe('https://iis.example.org/sid/dose^IZ-1^http://loinc.org^31044-1^1');
    expect(immunization.resource.reaction).toEqual([{ detail: { reference: 'local:Observation/1' }, date: '2024-11-04T11:20:00-07:00' }]);
  });

  test('repeated OBX-3/OBX-4 pairs get distinct, order-based identifiers; OBX-11 sets the status', () => {
    const { observations } = apply(`
OBX|1|CE|59784-9^Disease with presumed immunity^LN||38907003^Varicella^SCT||||||F
OBX|2|CE|59784-9^Disease with presumed immunity^LN||14189004^Measles^SCT||||||C`);
    expect(new Set(observations.map((o) => o.identifiers[0].value)).size).toBe(2);
    expect(observations.map((o) => o.resource.status)).toEqual(['final', 'corrected']);
  });

  test('an OBX without OBX-3 is ignored with a warning', () => {
    const { observations, ctx } = apply('OBX|1|ST|||some text||||||F');
    expect(observations).toEqual([]);
    expect(ctx.warnings[0].location).toEqual({ segment: 'OBX', sequence: 1, field: 3 });
  });
});

describe('obxValue', () => {
  function value(obx: string): { result: ReturnType<typeof obxValue>; ctx: MappingContext } {
    const message = readHl7Message(`MSH|^~\\&|IIS|STATEIIS|HUB|HUB|20240312101530||VXU^V04|1|P|2.5.1\r${obx}`);
    const ctx = new MappingContext(readMessageHeader(message), config);
    return { result: obxValue(message.getSegment('OBX') as Hl7Segment, ctx, { segment: 'OBX', field: 5 }), ctx };
  }

  test('reads the value by OBX-2', () => {
    expect(value('OBX|1|NM|30973-2^Dose number^LN||2|{#}^dose^UCUM|||||F').result).toEqual({
      valueQuantity: { value: 2, unit: 'dose', system: 'http://unitsofmeasure.org', code: '{#}' },
    });
    expect(value('OBX|1|ST|8675-3^Note^LN||line one~line two||||||F').result).toEqual({ valueString: 'line one\nline two' });
    expect(value('OBX|1|DT|29768-9^VIS^LN||20070517||||||F').result).toEqual({ valueDateTime: '2007-05-17' });
    expect(value('OBX|1|CWE|30963-3^Funding^LN||VXC50^Public^CDCPHINVS||||||F').result.valueCodeableConcept?.coding?.[0].code).toBe('VXC50');
    expect(value('OBX|1|NM|30973-2^Dose^LN||""||||||F').result).toEqual({});
  });

  test('unreadable numbers and unsupported types are dropped with a warning', () => {
    const nm = value('OBX|1|NM|30973-2^Dose number^LN||two||||||F');
    expect(nm.result).toEqual({});
    expect(nm.ctx.warnings).toHaveLength(1);
    const ed = value('OBX|1|ED|1-1^Image^LN||^IM^JPEG^Base64^AAAA||||||F');
    expect(ed.result).toEqual({});
    expect(ed.ctx.warnings[0].text).toContain("'ED'");
  });
});
