import type { Hl7Segment } from '@medplum/core';
import type { DocumentReference } from '@medplum/fhirtypes';
import { join } from 'node:path';
import { describe, expect, test } from 'vitest';
import { readHl7Message, readMessageHeader } from '../../hl7/message.ts';
import { readMappingConfigFiles } from '../config-files.ts';
import { MappingContext } from '../context.ts';
import type { ResourcePlan } from '../plan.ts';
import type { DocumentContent } from './document-obx.ts';
import type { DocumentOptions } from './txa.ts';
import { documentNumber, mapDocumentReference } from './txa.ts';

const config = readMappingConfigFiles(join(import.meta.dirname, '..', '..', '..', 'seed'));
const BODY: DocumentContent = { content: [{ attachment: { contentType: 'text/plain; charset=utf-8', data: 'aGk=' } }], uploads: [] };
const DOCUMENT_SYSTEM = 'https://fhir.integration-hub.dev/sid/hl7/NORTHSIDE/EPICDOC/document';

/** TXA fields by position (1-based), the rest empty. */
function txaLine(fields: Record<number, string>): string {
  const last = Math.max(...Object.keys(fields).map(Number));
  return ['TXA', ...Array.from({ length: last }, (_, i) => fields[i + 1] ?? '')].join('|');
}

const BASE: Record<number, string> = {
  1: '1',
  2: 'PN^Progress note^HL70270',
  4: '20240315140000-0500',
  6: '20240315160500-0500',
  9: '1457382910^Hoang^Linh^^^^MD^^NPI',
  10: '1457382910^Hoang^Linh^^^^MD^^NPI',
  12: 'DOC-7781',
  16: 'NSH_7781.txt',
  17: 'AU',
  18: 'R',
  19: 'AV',
};

function documentOf(
  fields: Record<number, string>,
  options: Partial<DocumentOptions> = {}
): { plan: ResourcePlan<DocumentReference>; plans: ResourcePlan[]; ctx: MappingContext } {
  const message = readHl7Message(`MSH|^~\\&|EPICDOC|NORTHSIDE|HUB|HUB|20240315161204||MDM^T02|1|P|2.6\r${txaLine(fields)}`);
  const ctx = new MappingContext(readMessageHeader(message), config);
  const plans: ResourcePlan[] = [];
  const plan = mapDocumentReference(message.getSegment('TXA') as Hl7Segment, BODY, { patientKey: 'Patient', ...options }, ctx, plans);
  return { plan, plans, ctx };
}

describe('mapDocumentReference', () => {
  test('TXA-12 is the master identifier and match key; the rest follows the IG', () => {
    const { plan, plans, ctx } = documentOf({ ...BASE, 25: 'Follow-up visit' }, { encounterKey: 'Encounter' });
    const number = { system: DOCUMENT_SYSTEM, value: 'DOC-7781' };
    expect(plan.identifiers).toEqual([number]);
    expect(plan.resource).toMatchObject({
      masterIdentifier: number,
      identifier: [number, { system: 'https://fhir.integration-hub.dev/sid/hl7/NORTHSIDE/EPICDOC/document-file-name', value: 'NSH_7781.txt' }],
      status: 'current',
      docStatus: 'final',
      type: { coding: [{ system: 'http://terminology.hl7.org/CodeSystem/v2-0270', code: 'PN' }] },
      date: '2024-03-15T16:05:00-05:00',
      subject: { reference: 'local:Patient' },
      author: [{ display: 'Linh Hoang MD' }],
      authenticator: { display: 'Linh Hoang MD' },
      securityLabel: [{ coding: [{ code: 'R' }] }],
      description: 'Follow-up visit',
      context: { encounter: [{ reference: 'local:Encounter' }], period: { start: '2024-03-15T14:00:00-05:00' } },
      content: [{ attachment: { ...BODY.content[0].attachment, title: 'Follow-up visit', creation: '2024-03-15T16:05:00-05:00' } }],
    });
    expect(plans.map((p) => p.key)).toEqual(['Practitioner/http://hl7.org/fhir/sid/us-npi^1457382910']);
    expect(ctx.warnings).toEqual([]);
  });

  test('completion and availability statuses', () => {
    const statuses = (completion: string, availability = ''): [string | undefined, string] => {
      const { plan } = documentOf({ ...BASE, 17: completion, 19: availability });
      return [plan.resource.docStatus, plan.resource.status];
    };
    expect(statuses('DI')).toEqual(['preliminary', 'current']);
    expect(statuses('IP')).toEqual(['preliminary', 'current']);
    expect(statuses('DO')).toEqual(['final', 'current']);
    expect(statuses('LA', 'OB')).toEqual(['final', 'superseded']);
    expect(statuses('AU', 'CA')).toEqual(['final', 'entered-in-error']);
    expect(statuses('CA')).toEqual(['entered-in-error', 'entered-in-error']);
    const { plan, ctx } = documentOf({ ...BASE, 17: 'XX' });
    expect(plan.resource.docStatus).toBeUndefined();
    expect(ctx.warnings[0].location).toEqual({ segment: 'TXA', field: 17 });
  });

  test('a LOINC document type keeps its system', () => {
    const { plan } = documentOf({ ...BASE, 2: '18842-5^Discharge summary^LN' });
    expect(plan.resource.type?.coding?.[0]).toMatchObject({ system: 'http://loinc.org', code: '18842-5' });
  });

  test('date: TXA-6 when it has a time, else TXA-4; a date alone is not an instant', () => {
    expect(documentOf({ ...BASE, 6: '' }).plan.resource.date).toBe('2024-03-15T14:00:00-05:00');
    const { plan, ctx } = documentOf({ ...BASE, 4: '20240315', 6: '20240315' });
    expect(plan.resource.date).toBeUndefined();
    expect(plan.resource.context?.period).toEqual({ start: '2024-03-15' });
    expect(plan.resource.content[0].attachment.creation).toBe('2024-03-15');
    expect(ctx.warnings.map((w) => w.location)).toEqual([{ segment: 'TXA', field: 6 }]);
    expect(documentOf({ ...BASE, 6: '2024031' }).ctx.warnings).toHaveLength(1);
  });

  test('an addendum appends to its parent, found by the parent document number', () => {
    const { plan } = documentOf({ ...BASE, 12: 'DOC-7790', 13: 'DOC-7781' }, { parentRelation: 'appends' });
    expect(plan.resource.relatesTo).toEqual([
      { code: 'appends', target: { type: 'DocumentReference', identifier: { system: DOCUMENT_SYSTEM, value: 'DOC-7781' } } },
    ]);
  });

  test('TXA-13 without a relation, or a relation without TXA-13, is reported', () => {
    const original = documentOf({ ...BASE, 13: 'DOC-7000' });
    expect(original.plan.resource.relatesTo).toBeUndefined();
    expect(original.ctx.warnings[0].location).toEqual({ segment: 'TXA', field: 13 });
    const orphan = documentOf(BASE, { parentRelation: 'appends' });
    expect(orphan.ctx.warnings[0]).toMatchObject({ code: '101', location: { segment: 'TXA', field: 13 } });
  });

  test('"" clears the authenticator and the title; uploads travel with the plan', () => {
    const message = readHl7Message(`MSH|^~\\&|EPICDOC|NORTHSIDE|HUB|HUB|20240315161204||MDM^T02|1|P|2.6\r${txaLine({ ...BASE, 10: '""', 25: '""' })}`);
    const ctx = new MappingContext(readMessageHeader(message), config);
    const upload = { path: 'content.0.attachment', contentType: 'application/pdf', data: 'JVBERg==', hash: 'x' };
    const plan = mapDocumentReference(message.getSegment('TXA') as Hl7Segment, { ...BODY, uploads: [upload] }, { patientKey: 'Patient' }, ctx, []);
    expect(plan.clear).toEqual(['authenticator', 'description']);
    expect(plan.uploads).toEqual([upload]);
  });
});

describe('documentNumber', () => {
  test('a missing TXA-12 is a required-field error', () => {
    const message = readHl7Message(`MSH|^~\\&|DICTATE|RIVERCLINIC|HUB|HUB|20240109083000||MDM^T02|1|P|2.3\r${txaLine({ ...BASE, 12: '' })}`);
    const ctx = new MappingContext(readMessageHeader(message), config);
    expect(() => documentNumber(message.getSegment('TXA') as Hl7Segment, ctx)).toThrow('TXA-12 (unique document number) is missing');
  });
});
