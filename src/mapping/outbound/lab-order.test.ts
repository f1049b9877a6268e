import type { Encounter, Identifier, Patient, Practitioner, ServiceRequest, Specimen } from '@medplum/fhirtypes';
import { join } from 'node:path';
import { describe, expect, test } from 'vitest';
import { HUB_SID } from '../../constants.ts';
import { rep, val } from '../../hl7/fields.ts';
import type { MessageHeaderInfo } from '../../hl7/message.ts';
import { readHl7Message, readMessageHeader } from '../../hl7/message.ts';
import { readMappingConfigFiles } from '../config-files.ts';
import { MappingContext } from '../context.ts';
import { findMessageMapper } from '../messages/registry.ts';
import type { MessagePlan, ResourcePlan } from '../plan.ts';
import type { LabOrderInput } from './lab-order.ts';
import { buildLabOrder } from './lab-order.ts';

const config = readMappingConfigFiles(join(import.meta.dirname, '..', '..', '..', 'seed'));

const V2_0203 = 'http://terminology.hl7.org/CodeSystem/v2-0203';
const PLACER: Identifier = {
  system: 'https://northside.example.org/fhir/sid/placer-order',
  value: 'ORD1001',
  type: { coding: [{ system: V2_0203, code: 'PLAC' }] },
};
const FILLER: Identifier = {
  system: 'https://acmelab.example.com/fhir/sid/filler-order',
  value: 'F-77',
  type: { coding: [{ system: V2_0203, code: 'FILL' }] },
};
const MRN: Identifier = { system: 'https://northside.example.org/fhir/sid/mrn', value: 'MRN123', type: { coding: [{ system: V2_0203, code: 'MR' }] } };
const EMPI: Identifier = { system: 'https://northside.example.org/fhir/sid/empi', value: 'EMPI9' };

const patient: Patient = {
  resourceType: 'Patient',
  id: 'pat-1',
  // The MRN is not first: PID-3 puts it first all the same.
  identifier: [EMPI, MRN, { system: 'http://hl7.org/fhir/sid/us-ssn', value: '123-45-6789', type: { coding: [{ system: V2_0203, code: 'SS' }] } }],
  name: [{ use: 'official', family: 'Rivera', given: ['Jane', 'Quinn'] }],
  birthDate: '1980-02-03',
  gender: 'female',
};

const requester: Practitioner = {
  resourceType: 'Practitioner',
  id: 'prac-1',
  identifier: [
    { system: 'https://northside.example.org/fhir/sid/staff', value: 'S55' },
    { system: 'http://hl7.org/fhir/sid/us-npi', value: '1987654325' },
  ],
  name: [{ family: 'Okafor', given: ['Oscar'], prefix: ['Dr'] }],
};

/** A ServiceRequest as the inbound order map writes one (see orders.ts / orc.ts). */
const serviceRequest: ServiceRequest = {
  resourceType: 'ServiceRequest',
  id: 'sr-1',
  identifier: [PLACER],
  status: 'active',
  intent: 'order',
  subject: { reference: 'Patient/pat-1' },
  requester: { reference: 'Practitioner/prac-1' },
  code: { coding: [{ system: 'http://loinc.org', code: '24323-8', display: 'Comprehensive metabolic panel' }], text: 'Comprehensive metabolic panel' },
  priority: 'stat',
  occurrenceDateTime: '2024-03-15T09:00:00-05:00',
  authoredOn: '2024-03-15T08:45:00-05:00',
  reasonCode: [{ coding: [{ system: 'http://hl7.org/fhir/sid/icd-10-cm', code: 'E11.9', display: 'Type 2 diabetes mellitus' }], text: 'Type 2 diabetes mellitus' }],
  note: [{ text: 'Patient fasting since midnight.' }],
};

function input(overrides: Partial<LabOrderInput> = {}): LabOrderInput {
  return {
    serviceRequest,
    patient,
    requester,
    messageType: 'ORM^O01',
    sending: { application: 'HUB', facility: 'NORTHSIDE' },
    receiving: { application: 'LABSYS', facility: 'ACMELAB' },
    controlId: 'HUB000001',
    now: '2024-03-15T14:00:05.123Z',
    config,
    ...overrides,
  };
}

function build(overrides: Partial<LabOrderInput> = {}): string {
  const result = buildLabOrder(input(overrides));
  if ('errors' in result) {
    throw new Error(result.errors.join('; '));
  }
  return result.message;
}

/**
 * Reads a message through the inbound pipeline's map.
 * @param text - ER7.
 * @param from - Read it as a message from this sender instead of its MSH-3/4 (a reply from the lab).
 */
function mapInbound(text: string, from?: Partial<MessageHeaderInfo>): MessagePlan {
  const message = readHl7Message(text);
  const header = { ...readMessageHeader(message), ...from };
  const mapper = findMessageMapper(header);
  if (!mapper) {
    throw new Error('no inbound map');
  }
  return mapper(message, new MappingContext(header, config));
}

function planOf<T extends ServiceRequest | Patient | Encounter | Specimen>(plan: MessagePlan, type: T['resourceType']): ResourcePlan<T> {
  const found = plan.resources.find((p) => p.resource.resourceType === type);
  if (!found) {
    throw new Error(`no ${type} planned`);
  }
  return found as ResourcePlan<T>;
}

function segments(text: string): string[] {
  return text.split('\r');
}

describe('buildLabOrder: ORM^O01 new order', () => {
  test('writes MSH, PID, PV1, ORC, OBR, NTE as v2.5.1 ORM_O01', () => {
    const result = buildLabOrder(input());
    expect(result).toMatchObject({ controlId: 'HUB000001' });
    const text = (result as { message: string }).message;
    expect(segments(text)).toEqual([
      'MSH|^~\\&|HUB|NORTHSIDE|LABSYS|ACMELAB|20240315140005.123+0000||ORM^O01^ORM_O01|HUB000001|P|2.5.1',
      'PID|1||MRN123^^^NSH&2.16.840.1.113883.3.9999.1&ISO^MR~EMPI9^^^EMPI||Rivera^Jane^Quinn^^^^L||19800203|F',
      'PV1|1|U',
      'ORC|NW|ORD1001^NSHORD|||||||20240315084500-0500|||1987654325^Okafor^Oscar^^^Dr^^^NPI&2.16.840.1.113883.4.6&ISO^^^^NPI',
      'OBR|1|ORD1001^NSHORD||24323-8^Comprehensive metabolic panel^LN^^^^^^Comprehensive metabolic panel|||20240315090000-0500|||||||||' +
        '1987654325^Okafor^Oscar^^^Dr^^^NPI&2.16.840.1.113883.4.6&ISO^^^^NPI|||||||||||^^^20240315090000-0500^^S||||' +
        'E11.9^Type 2 diabetes mellitus^I10^^^^^^Type 2 diabetes mellitus',
      'NTE|1|P|Patient fasting since midnight.',
    ]);
  });

  test('round trip: the inbound ORM map gives back the same placer number, code, patient and order details', () => {
    const plan = mapInbound(build());
    const request = planOf<ServiceRequest>(plan, 'ServiceRequest');
    expect(request.key).toBe(`ServiceRequest/${PLACER.system}^${PLACER.value}`);
    expect(request.identifiers).toEqual([PLACER]);
    expect(request.resource).toMatchObject({
      status: 'active',
      intent: 'order',
      code: serviceRequest.code,
      priority: 'stat',
      occurrenceDateTime: serviceRequest.occurrenceDateTime,
      authoredOn: serviceRequest.authoredOn,
      reasonCode: serviceRequest.reasonCode,
      note: serviceRequest.note,
      requester: { reference: 'local:Practitioner/http://hl7.org/fhir/sid/us-npi^1987654325', display: 'Dr Oscar Okafor' },
    });
    const pat = planOf<Patient>(plan, 'Patient');
    // The preferred (MRN) identifier first, then the others PID-3 carried; the SSN stays home.
    expect(pat.identifiers).toEqual([MRN, EMPI]);
    expect(pat.resource).toMatchObject({ name: patient.name, birthDate: patient.birthDate, gender: 'female' });
    const practitioner = plan.resources.find((p) => p.resource.resourceType === 'Practitioner');
    expect(practitioner?.identifiers).toEqual([{ system: 'http://hl7.org/fhir/sid/us-npi', value: '1987654325', type: { coding: [{ system: V2_0203, code: 'NPI' }] } }]);
  });

  test('the result the lab sends back (echoing the numbers) is keyed to the same order and patient', () => {
    const order = segments(build({ serviceRequest: { ...serviceRequest, identifier: [PLACER, FILLER] } }));
    const pid = order.find((s) => s.startsWith('PID|')) as string;
    const obr = (order.find((s) => s.startsWith('OBR|')) as string).split('|');
    obr[25] = 'F';
    const oru = [
      'MSH|^~\\&|LABSYS|ACMELAB|HUB|NORTHSIDE|20240315120000-0500||ORU^R01^ORU_R01|LAB1|P|2.5.1',
      pid,
      'ORC|RE|ORD1001^NSHORD|F-77^ACME',
      obr.join('|'),
      'OBX|1|NM|2345-7^Glucose^LN||95|mg/dL^mg/dL^UCUM|70-99|N|||F',
    ].join('\r');
    const plan = mapInbound(oru);
    const request = planOf<ServiceRequest>(plan, 'ServiceRequest');
    expect(request.resource.identifier).toEqual([PLACER, FILLER]);
    expect(request.resource.code).toEqual(serviceRequest.code);
    expect(planOf<Patient>(plan, 'Patient').identifiers).toEqual([MRN, EMPI]);
    // OBR-7 (the occurrence) read as the report's effective time.
    const report = plan.resources.find((p) => p.resource.resourceType === 'DiagnosticReport');
    expect(report?.resource).toMatchObject({ effectiveDateTime: serviceRequest.occurrenceDateTime, basedOn: [{ reference: `local:${request.key}` }] });
  });

  test('an encounter gives PV1-2 from its class and PV1-19 its visit number, read back as the same Encounter', () => {
    const visit: Identifier = { system: 'https://northside.example.org/fhir/sid/visit', value: 'V42', type: { coding: [{ system: V2_0203, code: 'VN' }] } };
    const encounter: Encounter = {
      resourceType: 'Encounter',
      id: 'enc-1',
      status: 'in-progress',
      class: { system: 'http://terminology.hl7.org/CodeSystem/v3-ActCode', code: 'IMP' },
      identifier: [visit],
      subject: { reference: 'Patient/pat-1' },
    };
    const text = build({ encounter, serviceRequest: { ...serviceRequest, encounter: { reference: 'Encounter/enc-1' } } });
    expect(segments(text)[2]).toBe('PV1|1|I|||||||||||||||||V42^^^NSHV^VN');
    const plan = mapInbound(text);
    expect(planOf<Encounter>(plan, 'Encounter').identifiers).toEqual([visit]);
    expect(planOf<ServiceRequest>(plan, 'ServiceRequest').resource.encounter).toEqual({ reference: 'local:Encounter' });
  });

  test('without an Encounter PV1-2 is U, or the configured default', () => {
    expect(segments(build())[2]).toBe('PV1|1|U');
    expect(segments(build({ defaultPatientClass: 'O' }))[2]).toBe('PV1|1|O');
  });

  test('a placer number found by the hub placer system (untyped) is sent as such', () => {
    const untyped: Identifier = { system: PLACER.system, value: 'ORD2' };
    expect(buildLabOrder(input({ serviceRequest: { ...serviceRequest, identifier: [untyped] } }))).toHaveProperty('errors');
    const text = build({ serviceRequest: { ...serviceRequest, identifier: [untyped] }, placerSystem: PLACER.system });
    expect(segments(text)[3]).toMatch(/^ORC\|NW\|ORD2\^NSHORD\|/);
  });

  test('a local test code of the receiver keeps its table name; one of another sender keeps its URI', () => {
    const acmeLocal = `${HUB_SID}/local/ACMELAB/LABSYS/99ACM`;
    const otherLocal = `${HUB_SID}/local/OTHERFAC/OTHERAPP/99X`;
    const code = {
      coding: [
        { system: acmeLocal, code: 'CMP', display: 'Chem panel' },
        { system: otherLocal, code: 'X1' },
      ],
    };
    const text = build({ serviceRequest: { ...serviceRequest, code } });
    const obr = readHl7Message(text).getSegment('OBR');
    expect(rep(obr, 4)?.components.map((c) => c.join('&'))).toEqual(['CMP', 'Chem panel', '99ACM', 'X1', '', otherLocal]);
    // Read back as the lab's reply: the same codings.
    const plan = mapInbound(text, { sendingApplication: 'LABSYS', sendingFacility: 'ACMELAB' });
    expect(planOf<ServiceRequest>(plan, 'ServiceRequest').resource.code?.coding).toEqual([
      { system: acmeLocal, code: 'CMP', display: 'Chem panel' },
      { system: otherLocal, code: 'X1' },
    ]);
  });

  test('a filler number the lab sent without an authority goes back without one, and reads back the same', () => {
    const labLocal: Identifier = { ...FILLER, system: `${HUB_SID}/hl7/ACMELAB/LABSYS/FILL` };
    const text = build({ serviceRequest: { ...serviceRequest, identifier: [PLACER, labLocal] } });
    expect(val(readHl7Message(text).getSegment('ORC'), 3)).toBe('F-77');
    expect(rep(readHl7Message(text).getSegment('ORC'), 3)?.components).toEqual([['F-77']]);
    const plan = mapInbound(text, { sendingApplication: 'LABSYS', sendingFacility: 'ACMELAB' });
    expect(planOf<ServiceRequest>(plan, 'ServiceRequest').resource.identifier).toEqual([PLACER, labLocal]);
  });

  test('a changed order (isChange) is XO, with ORC-9 the transaction time', () => {
    const text = build({ isChange: true });
    expect(segments(text)[3]).toMatch(/^ORC\|XO\|ORD1001\^NSHORD\|{7}20240315140005\.123\+0000\|/);
    expect(planOf<ServiceRequest>(mapInbound(text), 'ServiceRequest').resource.status).toBe('active');
  });
});

describe('buildLabOrder: OML^O21', () => {
  const specimen: Specimen = {
    resourceType: 'Specimen',
    identifier: [{ system: 'https://northside.example.org/fhir/sid/placer-order', value: 'SP1', type: { coding: [{ system: V2_0203, code: 'PLAC' }] } }],
    type: { coding: [{ system: 'http://terminology.hl7.org/CodeSystem/v2-0487', code: 'BLD', display: 'Whole blood' }] },
    collection: { collectedDateTime: '2024-03-15T08:50:00-05:00' },
  };

  test('ORC, TQ1, OBR, NTE, SPM in the v2.5.1 OML_O21 order group; OBR-27 not used', () => {
    const text = build({
      messageType: 'OML^O21',
      specimens: [specimen],
      serviceRequest: { ...serviceRequest, occurrenceDateTime: undefined, occurrencePeriod: { start: '2024-03-15T09:00:00-05:00', end: '2024-03-15T10:00:00-05:00' } },
    });
    const lines = segments(text);
    expect(lines.map((s) => s.slice(0, 3))).toEqual(['MSH', 'PID', 'PV1', 'ORC', 'TQ1', 'OBR', 'NTE', 'SPM']);
    expect(lines[0]).toContain('|OML^O21^OML_O21|');
    expect(lines[4]).toBe('TQ1|1||||||20240315090000-0500|20240315100000-0500|S');
    expect(val(readHl7Message(text).getSegment('OBR'), 27)).toBe('');
    expect(lines[7]).toBe('SPM|1|SP1&NSHORD||BLD^Whole blood^HL70487|||||||||||||20240315085000-0500');

    const plan = mapInbound(text);
    const request = planOf<ServiceRequest>(plan, 'ServiceRequest');
    expect(request.identifiers).toEqual([PLACER]);
    expect(request.resource).toMatchObject({
      code: serviceRequest.code,
      priority: 'stat',
      occurrencePeriod: { start: '2024-03-15T09:00:00-05:00', end: '2024-03-15T10:00:00-05:00' },
    });
    const spec = planOf<Specimen>(plan, 'Specimen');
    expect(spec.resource).toMatchObject({ identifier: specimen.identifier, type: specimen.type, collection: specimen.collection });
    expect(request.resource.specimen).toEqual([{ reference: `local:${spec.key}` }]);
  });

  test('a specimen without a type is refused (SPM-4 is required)', () => {
    const result = buildLabOrder(input({ messageType: 'OML^O21', specimens: [{ ...specimen, type: undefined }] }));
    expect(result).toEqual({ errors: ['Specimen[0].type: no coding with a code and a system (SPM-4 is required)'] });
  });
});

describe('buildLabOrder: cancel', () => {
  const revoked: ServiceRequest = { ...serviceRequest, status: 'revoked' };

  test('CA with ORC-9 the transaction time; ORC and OBR only; read back as revoked', () => {
    const text = build({ serviceRequest: revoked, messageType: 'OML^O21' });
    const lines = segments(text);
    expect(lines.map((s) => s.slice(0, 3))).toEqual(['MSH', 'PID', 'PV1', 'ORC', 'OBR']);
    expect(lines[3]).toMatch(/^ORC\|CA\|ORD1001\^NSHORD\|{7}20240315140005\.123\+0000\|/);
    expect(val(readHl7Message(text).getSegment('OBR'), 31)).toBe('');
    const request = planOf<ServiceRequest>(mapInbound(text), 'ServiceRequest');
    expect(request.identifiers).toEqual([PLACER]);
    expect(request.resource.status).toBe('revoked');
    // The cancel's transaction time is not the order's authoredOn.
    expect(request.defaultsOnly).toContain('authoredOn');
  });

  test('a cancel without a code is an ORC alone', () => {
    const text = build({ serviceRequest: { ...revoked, code: undefined } });
    expect(segments(text).map((s) => s.slice(0, 3))).toEqual(['MSH', 'PID', 'PV1', 'ORC']);
    expect(planOf<ServiceRequest>(mapInbound(text), 'ServiceRequest').resource.status).toBe('revoked');
  });
});

describe('buildLabOrder: escaping', () => {
  test('delimiters in text values are escaped and read back unchanged', () => {
    const odd = 'A|B^C~D\\E&F';
    const text = build({
      patient: { ...patient, name: [{ family: `O'Brien ${odd}`, given: ['Jane'] }] },
      serviceRequest: { ...serviceRequest, code: { ...serviceRequest.code, text: `Panel ${odd}` }, note: [{ text: `Note ${odd}\nsecond line` }] },
      sending: { application: 'HUB&1', facility: 'NORTH|SIDE' },
    });
    const lines = segments(text);
    expect(lines[0]).toMatch(/^MSH\|\^~\\&\|HUB\\T\\1\|NORTH\\F\\SIDE\|/);
    expect(lines[1]).toContain("|O'Brien A\\F\\B\\S\\C\\R\\D\\E\\E\\T\\F^Jane|");
    expect(lines.find((s) => s.startsWith('NTE|'))).toBe('NTE|1|P|Note A\\F\\B\\S\\C\\R\\D\\E\\E\\T\\F\\.br\\second line');

    const message = readHl7Message(text);
    expect(message.segments.map((s) => s.name)).toEqual(['MSH', 'PID', 'PV1', 'ORC', 'OBR', 'NTE']);
    expect(readMessageHeader(message)).toMatchObject({ messageCode: 'ORM', triggerEvent: 'O01', controlId: 'HUB000001', version: '2.5.1' });
    const plan = mapInbound(text);
    expect(planOf<Patient>(plan, 'Patient').resource.name).toEqual([{ family: `O'Brien ${odd}`, given: ['Jane'] }]);
    const request = planOf<ServiceRequest>(plan, 'ServiceRequest').resource;
    expect(request.code?.text).toBe(`Panel ${odd}`);
    expect(request.note).toEqual([{ text: `Note ${odd}\nsecond line` }]);
  });

  test('non-ASCII text names its character set in MSH-18', () => {
    const text = build({ patient: { ...patient, name: [{ family: 'Núñez', given: ['José'] }] } });
    expect(readMessageHeader(readHl7Message(text)).characterSet).toBe('UNICODE UTF-8');
    expect(readMessageHeader(readHl7Message(build())).characterSet).toBe('');
  });
});

describe('buildLabOrder: errors', () => {
  const secret = 'SECRET-VALUE';

  function errorsOf(overrides: Partial<LabOrderInput>): string[] {
    const result = buildLabOrder(input(overrides));
    expect(result).not.toHaveProperty('message');
    return (result as { errors: string[] }).errors;
  }

  test.each(['draft', 'on-hold', 'completed', 'entered-in-error', 'unknown'] as const)('status %s is not sent', (status) => {
    expect(errorsOf({ serviceRequest: { ...serviceRequest, status } })).toEqual([
      'ServiceRequest.status: only active (new or changed order) and revoked (cancel) orders are sent',
    ]);
  });

  test('no placer number, or one without a system', () => {
    expect(errorsOf({ serviceRequest: { ...serviceRequest, identifier: [FILLER] } })).toEqual(['ServiceRequest.identifier: no placer order number (type PLAC)']);
    expect(errorsOf({ serviceRequest: { ...serviceRequest, identifier: [{ ...PLACER, system: undefined, value: secret }] } })).toEqual([
      'ServiceRequest.identifier: the placer order number has no system that an assigning authority can name',
    ]);
  });

  test('no usable patient identifier', () => {
    expect(errorsOf({ patient: { ...patient, identifier: [{ value: secret }, { system: 'http://hl7.org/fhir/sid/us-ssn', value: secret }] } })).toEqual([
      'Patient.identifier: no identifier with a value and a system',
    ]);
  });

  test('no code (a new order); a text-only code is no code', () => {
    expect(errorsOf({ serviceRequest: { ...serviceRequest, code: undefined } })).toEqual(['ServiceRequest.code: no coding with a code and a system']);
    expect(errorsOf({ serviceRequest: { ...serviceRequest, code: { text: secret } } })).toEqual(['ServiceRequest.code: no coding with a code and a system']);
  });

  test('an order for another patient, visit or provider than the resources given', () => {
    const errors = errorsOf({
      serviceRequest: { ...serviceRequest, subject: { reference: 'Patient/other' }, requester: { reference: 'Practitioner/other' } },
    });
    expect(errors).toEqual(['ServiceRequest.subject does not reference the Patient given', 'ServiceRequest.requester does not reference the Practitioner given']);
  });

  test('all errors at once, naming elements and never values', () => {
    const errors = errorsOf({
      serviceRequest: { ...serviceRequest, status: 'draft', identifier: [], code: { text: secret } },
      patient: { ...patient, identifier: [{ value: secret }] },
      controlId: ' ',
      now: '2024-03-15',
    });
    expect(errors).toHaveLength(6);
    expect(errors.join('\n')).not.toContain(secret);
  });
});
