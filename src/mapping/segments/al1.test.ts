import type { Hl7Segment } from '@medplum/core';
import { join } from 'node:path';
import { describe, expect, test } from 'vitest';
import { readHl7Message, readMessageHeader } from '../../hl7/message.ts';
import { readMappingConfigFiles } from '../config-files.ts';
import { MappingContext } from '../context.ts';
import { MappingError } from '../plan.ts';
import { mapAllergy } from './al1.ts';
import { mapAdverseReaction } from './iam.ts';

const config = readMappingConfigFiles(join(import.meta.dirname, '..', '..', '..', 'seed'));
const PATIENT = { key: 'Patient', identifier: { system: 'https://northside.example.org/fhir/sid/mrn', value: '100234' }, token: 'https://northside.example.org/fhir/sid/mrn^100234' };

function setup(segment: string): { ctx: MappingContext; segment: Hl7Segment } {
  const message = readHl7Message(`MSH|^~\\&|ADTSYS|NORTHSIDE|HUB|HUB|20261105141000||ADT^A60|1|P|2.5.1\r${segment}`);
  return { ctx: new MappingContext(readMessageHeader(message), config), segment: message.segments[1] };
}

describe('mapAllergy (AL1)', () => {
  test('type, code, severity, reactions and onset per the IG', () => {
    const { ctx, segment } = setup('AL1|1|DA^Drug allergy^HL70127|7980^Penicillin G^RXNORM|SV^Severe^HL70128|Hives~Wheezing|20150601');
    const plan = mapAllergy(segment, ctx, PATIENT, 1);
    expect(plan?.resource).toMatchObject({
      clinicalStatus: { coding: [{ code: 'active' }] },
      category: ['medication'],
      type: 'allergy',
      code: { coding: [{ system: 'http://www.nlm.nih.gov/research/umls/rxnorm', code: '7980' }] },
      criticality: 'high',
      reaction: [{ manifestation: [{ text: 'Hives' }, { text: 'Wheezing' }], severity: 'severe' }],
      onsetDateTime: '2015-06-01',
      patient: { reference: 'local:Patient' },
    });
    expect(plan?.resource.verificationStatus).toBeUndefined();
    expect(plan?.identifiers).toEqual([
      {
        system: 'https://fhir.integration-hub.dev/sid/allergy',
        value: 'https://northside.example.org/fhir/sid/mrn^100234^http://www.nlm.nih.gov/research/umls/rxnorm^7980',
      },
    ]);
  });

  test('a text-only allergen is keyed by its text, whatever the case', () => {
    const a = setup('AL1|1|EA|^Latex|MI');
    const b = setup('AL1|4||^LATEX');
    expect(mapAllergy(a.segment, a.ctx, PATIENT, 1)?.identifiers).toEqual(mapAllergy(b.segment, b.ctx, PATIENT, 4)?.identifiers);
    expect(mapAllergy(a.segment, a.ctx, PATIENT, 1)?.resource).toMatchObject({ category: ['environment'], criticality: 'low' });
  });

  test('MC (contraindication) is not typed; moderate has no criticality and no reaction without AL1-5', () => {
    const { ctx, segment } = setup('AL1|1|MC|^Contrast media|MO');
    const resource = mapAllergy(segment, ctx, PATIENT, 1)?.resource;
    expect(resource?.type).toBeUndefined();
    expect(resource?.category).toBeUndefined();
    expect(resource?.criticality).toBeUndefined();
    expect(resource?.reaction).toBeUndefined();
  });

  test('an AL1 without allergen is dropped with a warning', () => {
    const { ctx, segment } = setup('AL1|2|DA||SV');
    expect(mapAllergy(segment, ctx, PATIENT, 2)).toBeUndefined();
    expect(ctx.warnings[0]).toMatchObject({ code: '101', location: { segment: 'AL1', sequence: 2, field: 3 } });
  });
});

describe('mapAdverseReaction (IAM)', () => {
  test('A/U: same identity as AL1, IAM-7 also matched, coded reactions, IAM-17 C confirmed', () => {
    const { ctx, segment } = setup('IAM|1|DA|7980^Penicillin G^RXNORM|SV|39579001^Anaphylaxis^SCT|U|ALG-1||||20150601||20261106110000||||C');
    const plan = mapAdverseReaction(segment, ctx, PATIENT, 1);
    const al1 = setup('AL1|1|DA|7980^Penicillin G^RXNORM');
    expect(plan?.identifiers[0]).toEqual(mapAllergy(al1.segment, al1.ctx, PATIENT, 1)?.identifiers[0]);
    expect(plan?.identifiers[1]).toEqual({ system: 'https://fhir.integration-hub.dev/sid/hl7/NORTHSIDE/ADTSYS/id', value: 'ALG-1' });
    expect(plan?.merge).toBe('overlay');
    expect(plan?.resource).toMatchObject({
      clinicalStatus: { coding: [{ code: 'active' }] },
      verificationStatus: { coding: [{ code: 'confirmed' }] },
      reaction: [{ manifestation: [{ coding: [{ system: 'http://snomed.info/sct', code: '39579001' }] }], severity: 'severe' }],
      onsetDateTime: '2015-06-01',
      recordedDate: '2026-11-06T11:00:00-06:00',
    });
  });

  test('D: entered-in-error, clinicalStatus cleared (ait-2)', () => {
    const { ctx, segment } = setup('IAM|3|EA|^Latex|||D');
    const plan = mapAdverseReaction(segment, ctx, PATIENT, 3);
    expect(plan?.resource.verificationStatus?.coding?.[0].code).toBe('entered-in-error');
    expect(plan?.resource.clinicalStatus).toBeUndefined();
    expect(plan?.clear).toEqual(['clinicalStatus']);
  });

  test('IAM-17 I is inactive; X only fills; an empty action reads as update', () => {
    const inactive = setup('IAM|1|FA|^Peanut|||U|||||||||||I');
    expect(mapAdverseReaction(inactive.segment, inactive.ctx, PATIENT, 1)?.resource.clinicalStatus?.coding?.[0].code).toBe('inactive');
    const noChange = setup('IAM|1|FA|^Peanut|||X');
    expect(mapAdverseReaction(noChange.segment, noChange.ctx, PATIENT, 1)?.merge).toBe('fill');
    const empty = setup('IAM|1|FA|^Peanut|||');
    expect(mapAdverseReaction(empty.segment, empty.ctx, PATIENT, 1)?.merge).toBe('overlay');
    expect(empty.ctx.warnings[0]).toMatchObject({ location: { segment: 'IAM', sequence: 1, field: 6 } });
  });

  test('an unknown action code is refused', () => {
    const { ctx, segment } = setup('IAM|1|FA|^Peanut|||Z');
    expect(() => mapAdverseReaction(segment, ctx, PATIENT, 1)).toThrow(MappingError);
  });
});
