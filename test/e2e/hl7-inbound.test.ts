import type { WithId } from '@medplum/core';
import type {
  Appointment,
  DiagnosticReport,
  DocumentReference,
  Encounter,
  Immunization,
  MessageHeader,
  Observation,
  Organization,
  Patient,
  Practitioner,
  Resource,
  ServiceRequest,
} from '@medplum/fhirtypes';
import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import type { TestContext } from 'vitest';
import { LedgerExtension, MESSAGE_KEY_SYSTEM, messageKey, outcomeOf, readRawMessage } from '../../src/fhir/ledger.ts';
import { readHl7Message, readMessageHeader } from '../../src/hl7/message.ts';
import type { LedgerCounts, LedgerStats } from '../../src/inbound/stats.ts';
import { ledgerStats, senderLabel } from '../../src/inbound/stats.ts';
import {
  adtA01,
  adtA08,
  adtWithoutPatientId,
  controlId,
  controlIdOf,
  mdmT02,
  ormO01,
  oruR01,
  siuS12,
  SYSTEMS,
  testPatient,
  unsupportedQuery,
  vitalsOru,
  vxuV04,
} from '../support/hl7-messages.ts';
import type { TestPatient } from '../support/hl7-messages.ts';
import { ackCode, MllpSender } from '../support/mllp-sender.ts';
import type { E2eTarget } from '../support/target.ts';
import { startE2eTarget } from '../support/target.ts';

/**
 * HL7 v2 inbound end to end over real MLLP (node-hl7-client) against startE2eTarget(): each
 * supported message family reaches its sender's agent channel and is answered AA only after the
 * commit (the resources are readable the moment the ACK arrives); unsupported messages get AR and
 * data errors AE with an ERR segment and a dead-letter ledger entry holding the raw message;
 * re-sent messages and feeds change nothing; out-of-order feeds converge; every received message
 * has exactly one ledger entry, and the ledger statistics add up.
 */
describe('HL7 inbound over MLLP', () => {
  let target: E2eTarget;
  const senders = new Map<string, MllpSender>();
  let statsBefore: LedgerStats;
  /** What this file sent, per ledger sender label (`FACILITY/APPLICATION`), for the statistics check. */
  const sent = new Map<string, LedgerCounts>();

  beforeAll(async () => {
    target = await startE2eTarget();
    statsBefore = await ledgerStats(target.client);
  });

  afterAll(async () => {
    for (const sender of senders.values()) {
      await sender.close();
    }
    await target?.stop();
  });

  /** The sender for a channel, or why the channel cannot be reached on this target. */
  function channel(name: string): MllpSender | string {
    const existing = senders.get(name);
    if (existing) {
      return existing;
    }
    if (target.kind === 'stock' && name !== 'northside-adt') {
      // test/support/target.ts knows one stock agent address (the ADT channel's): the others'
      // ports, encodings and enhanced mode cannot be reached or checked.
      return `stock target: only the ADT channel's address is configured (HUB_E2E_AGENT_MLLP_PORT); ${name} cannot be reached`;
    }
    const address = target.mllp(name);
    if ('skip' in address) {
      return address.skip;
    }
    const sender = name === 'state-iis' ? new MllpSender(address.host, address.port, '2.5.1', 'latin1') : new MllpSender(address.host, address.port);
    senders.set(name, sender);
    return sender;
  }

  /**
   * Sends a message on a channel (skipping the test when the channel is unreachable) and records
   * what the ledger should count for it.
   */
  async function send(
    ctx: TestContext,
    name: string,
    er7: string,
    expected: { outcome: 'committed' | 'rejected' | 'dead-letter'; duplicate?: boolean },
    answers = 1
  ): Promise<string[]> {
    const sender = channel(name);
    if (typeof sender === 'string') {
      ctx.skip(sender);
      return [];
    }
    const acks = await sender.send(er7, answers);
    const header = readMessageHeader(readHl7Message(er7));
    const label = `${header.sendingFacility}/${header.sendingApplication}`;
    const counts = sent.get(label) ?? { received: 0, committed: 0, rejected: 0, deadLettered: 0, resolved: 0, duplicates: 0, replays: 0 };
    counts.received++;
    counts[expected.outcome === 'dead-letter' ? 'deadLettered' : expected.outcome]++;
    if (expected.duplicate) {
      counts.duplicates++;
    }
    sent.set(label, counts);
    return acks;
  }

  /** @returns The ledger entries of a message (by its key: sender and MSH-10), oldest first. */
  async function ledgerOf(er7: string): Promise<WithId<MessageHeader>[]> {
    const header = readMessageHeader(readHl7Message(er7));
    return target.client.searchResources('MessageHeader', { _tag: `${MESSAGE_KEY_SYSTEM}|${messageKey(header)}`, _sort: '_lastUpdated' });
  }

  /** The single committed ledger entry of a message, with its focus resources read back by type. */
  async function committedEntry(er7: string): Promise<{ entry: WithId<MessageHeader>; focus: Map<string, WithId<Resource>[]> }> {
    const entries = await ledgerOf(er7);
    expect(entries).toHaveLength(1);
    const entry = entries[0];
    expect(outcomeOf(entry)).toBe('committed');
    expect(entry.extension?.find((e) => e.url === LedgerExtension.ackCode)?.valueCode).toBe('AA');
    const focus = new Map<string, WithId<Resource>[]>();
    for (const ref of entry.focus ?? []) {
      const resource = await target.client.readReference(ref as { reference: string });
      focus.set(resource.resourceType, [...(focus.get(resource.resourceType) ?? []), resource]);
    }
    return { entry, focus };
  }

  const one = async <T extends Resource>(type: T['resourceType'], query: Record<string, string>): Promise<WithId<T>> => {
    const found = (await target.client.searchResources(type, query)) as unknown as WithId<T>[];
    expect(found, `${type}?${new URLSearchParams(query).toString()}`).toHaveLength(1);
    return found[0];
  };
  const patientOf = (p: TestPatient): Promise<WithId<Patient>> => one<Patient>('Patient', { identifier: `${SYSTEMS.mrn}|${p.mrn}` });
  const visitOf = (p: TestPatient, suffix = ''): Promise<WithId<Encounter>> =>
    one<Encounter>('Encounter', { identifier: `${SYSTEMS.visit}|${p.visit}${suffix}` });
  const ref = (r: WithId<Resource>): string => `${r.resourceType}/${r.id}`;
  const ids = (resources: WithId<Resource>[] | undefined): string[] => (resources ?? []).map(ref).sort();

  function expectNoErr(ack: string | undefined): void {
    expect(ack?.split('\r').filter((s) => s.startsWith('ERR'))).toEqual([]);
  }

  test('ADT^A01 with NK1, AL1, DG1 and IN1 on northside-adt: AA after the commit, every resource linked to the Patient', async (ctx) => {
    const p = testPatient();
    const msg = adtA01(p);
    const [ack] = await send(ctx, 'northside-adt', msg, { outcome: 'committed' });
    expect(ack).toContain(`MSA|AA|${controlIdOf(msg)}`);
    expectNoErr(ack);

    // Read right after the ACK, without waiting: AA means committed.
    const patient = await patientOf(p);
    expect(patient.name?.[0]).toMatchObject({ family: p.family, given: [p.given, 'Q'] });
    expect(patient.birthDate).toBe('1980-01-02');
    const encounter = await visitOf(p);
    expect(encounter).toMatchObject({ status: 'in-progress', class: { code: 'IMP' }, subject: { reference: ref(patient) } });
    expect(encounter.period?.start).toBe('2024-03-15T08:00:00-05:00');
    const attending = await target.client.readReference(encounter.participant?.[0]?.individual as { reference: string });
    expect((attending as Practitioner).identifier).toContainEqual(expect.objectContaining({ system: SYSTEMS.npi, value: '1234567893' }));
    expect(encounter.location?.[0]).toMatchObject({ status: 'active', location: { reference: expect.stringMatching(/^Location\//) } });

    const patientRef = { reference: ref(patient) };
    const [kin] = await target.client.searchResources('RelatedPerson', { patient: ref(patient) });
    expect(kin).toMatchObject({ patient: patientRef, name: [{ family: p.family, given: ['Carlos'] }] });
    expect(kin.relationship?.[0].coding?.[0]).toMatchObject({ code: 'SPO' });
    const [allergy] = await target.client.searchResources('AllergyIntolerance', { patient: ref(patient) });
    expect(allergy).toMatchObject({ patient: patientRef, code: { coding: [expect.objectContaining({ code: '7980' })] }, criticality: 'high' });
    const [condition] = await target.client.searchResources('Condition', { subject: ref(patient) });
    expect(condition).toMatchObject({ subject: patientRef, encounter: { reference: ref(encounter) } });
    expect(condition.code?.coding?.[0]).toMatchObject({ system: 'http://hl7.org/fhir/sid/icd-10-cm', code: 'J18.9' });
    expect(encounter.diagnosis?.[0].condition.reference).toBe(ref(condition));
    const [coverage] = await target.client.searchResources('Coverage', { beneficiary: ref(patient) });
    expect(coverage).toMatchObject({ status: 'active', beneficiary: patientRef, subscriber: patientRef, subscriberId: `POL${p.tag}` });
    const payor = (await target.client.readReference(coverage.payor[0] as { reference: string })) as WithId<Organization>;
    expect(payor.name).toBe('Blue Cross Blue Shield of Illinois');

    // The ledger entry's focus is exactly what the message wrote.
    const { focus } = await committedEntry(msg);
    expect(ids(focus.get('Patient'))).toEqual([ref(patient)]);
    expect(ids(focus.get('Encounter'))).toEqual([ref(encounter)]);
    expect(ids(focus.get('RelatedPerson'))).toEqual([ref(kin)]);
    expect(ids(focus.get('AllergyIntolerance'))).toEqual([ref(allergy)]);
    expect(ids(focus.get('Condition'))).toEqual([ref(condition)]);
    expect(ids(focus.get('Coverage'))).toEqual([ref(coverage)]);
    expect(ids(focus.get('Organization'))).toContain(ref(payor));
    expect(ids(focus.get('Practitioner'))).toContain(ref(attending as WithId<Practitioner>));
  });

  test('ORU^R01 with several OBX on acme-lab: a DiagnosticReport with its Observations, order and patient', async (ctx) => {
    const p = testPatient();
    const msg = oruR01(p);
    const [ack] = await send(ctx, 'acme-lab', msg, { outcome: 'committed' });
    expect(ack).toContain(`MSA|AA|${controlIdOf(msg)}`);
    expectNoErr(ack);

    const patient = await patientOf(p);
    const order = await one<ServiceRequest>('ServiceRequest', { identifier: `${SYSTEMS.acmeFiller}|ACC${p.tag}` });
    expect(order.identifier).toContainEqual(expect.objectContaining({ system: SYSTEMS.placer, value: `ORD${p.tag}` }));
    expect(order.subject.reference).toBe(ref(patient));
    const report = await one<DiagnosticReport>('DiagnosticReport', { subject: ref(patient) });
    expect(report).toMatchObject({ status: 'final', subject: { reference: ref(patient) }, basedOn: [{ reference: ref(order) }] });
    expect(report.code.coding?.[0]).toMatchObject({ system: 'http://loinc.org', code: '24323-8' });
    expect(report.result).toHaveLength(4);
    const results = (await Promise.all((report.result ?? []).map((r) => target.client.readReference(r)))) as WithId<Observation>[];
    expect(results.map((o) => o.code.coding?.[0].code)).toEqual(['2345-7', '2160-0', '2951-2', '2823-3']);
    for (const o of results) {
      expect(o).toMatchObject({ status: 'final', subject: { reference: ref(patient) }, basedOn: [{ reference: ref(order) }] });
    }
    expect(results[3].valueQuantity).toMatchObject({ value: 5.6, system: 'http://unitsofmeasure.org', code: 'mmol/L' });
    expect(results[3].interpretation?.[0].coding?.[0].code).toBe('H');

    const { focus } = await committedEntry(msg);
    expect(ids(focus.get('DiagnosticReport'))).toEqual([ref(report)]);
    expect(ids(focus.get('Observation'))).toEqual(ids(results));
    expect(ids(focus.get('ServiceRequest'))).toEqual([ref(order)]);
  });

  test('ORM^O01 on northside-ehr: a ServiceRequest with its requester, reason, note and visit', async (ctx) => {
    const p = testPatient();
    const msg = ormO01(p);
    const [ack] = await send(ctx, 'northside-ehr', msg, { outcome: 'committed' });
    expect(ack).toContain(`MSA|AA|${controlIdOf(msg)}`);
    expectNoErr(ack);

    const patient = await patientOf(p);
    const encounter = await visitOf(p);
    const order = await one<ServiceRequest>('ServiceRequest', { identifier: `${SYSTEMS.placer}|ORD${p.tag}` });
    expect(order).toMatchObject({
      status: 'active',
      intent: 'order',
      subject: { reference: ref(patient) },
      encounter: { reference: ref(encounter) },
      requisition: { value: `GRP${p.tag}` },
      note: [{ text: 'Patient fasting since midnight.' }],
      authoredOn: '2024-03-15T08:45:00-05:00',
    });
    expect(order.code?.coding?.[0]).toMatchObject({ system: 'http://loinc.org', code: '24323-8' });
    expect(order.reasonCode?.[0].coding?.[0]).toMatchObject({ code: 'E11.9' });
    const requester = (await target.client.readReference(order.requester as { reference: string })) as Practitioner;
    expect(requester.identifier).toContainEqual(expect.objectContaining({ system: SYSTEMS.npi, value: '1987654325' }));

    const { focus } = await committedEntry(msg);
    expect(ids(focus.get('ServiceRequest'))).toEqual([ref(order)]);
  });

  test('VXU^V04 on state-iis (ISO 8859-1): an Immunization, with the accented names read correctly', async (ctx) => {
    const p = testPatient('Muñoz', 'José');
    const msg = vxuV04(p);
    const [ack] = await send(ctx, 'state-iis', msg, { outcome: 'committed' });
    expect(ack).toContain(`MSA|AA|${controlIdOf(msg)}`);
    expectNoErr(ack);

    const patient = await patientOf(p);
    expect(patient.name?.[0]).toMatchObject({ family: 'Muñoz', given: ['José', 'Q'] });
    expect(patient.address?.[0].line).toEqual(['Calle Ñandú 5']);
    const immunization = await one<Immunization>('Immunization', { patient: ref(patient) });
    expect(immunization).toMatchObject({
      status: 'completed',
      patient: { reference: ref(patient) },
      occurrenceDateTime: '2024-03-01',
      lotNumber: `LOT${p.tag.slice(0, 4)}`,
    });
    expect(immunization.vaccineCode.coding?.[0]).toMatchObject({ system: 'http://hl7.org/fhir/sid/cvx', code: '08' });
    const manufacturer = (await target.client.readReference(immunization.manufacturer as { reference: string })) as Organization;
    expect(manufacturer.name).toBe('Merck and Co., Inc.');

    const { focus } = await committedEntry(msg);
    expect(ids(focus.get('Immunization'))).toEqual([ref(immunization)]);
    expect(ids(focus.get('Patient'))).toEqual([ref(patient)]);
  });

  test('MDM^T02 on northside-ehr: a DocumentReference with its content, author and visit', async (ctx) => {
    const p = testPatient();
    const msg = mdmT02(p);
    const [ack] = await send(ctx, 'northside-ehr', msg, { outcome: 'committed' });
    expect(ack).toContain(`MSA|AA|${controlIdOf(msg)}`);
    expectNoErr(ack);

    const patient = await patientOf(p);
    const encounter = await visitOf(p);
    const document = await one<DocumentReference>('DocumentReference', { subject: ref(patient) });
    expect(document).toMatchObject({
      status: 'current',
      docStatus: 'final',
      subject: { reference: ref(patient) },
      context: { encounter: [{ reference: ref(encounter) }] },
    });
    expect(document.identifier?.[0].value).toBe(`DOC${p.tag}`);
    const attachment = document.content[0].attachment;
    const text = attachment.data
      ? Buffer.from(attachment.data, 'base64').toString('utf8')
      : await (await target.client.download(attachment.url as string)).text();
    expect(text).toContain('Admitted with community acquired pneumonia.');
    expect(text).toContain('discharged home in stable condition.');
    expect(document.author?.[0].reference).toMatch(/^Practitioner\//);

    const { focus } = await committedEntry(msg);
    expect(ids(focus.get('DocumentReference'))).toEqual([ref(document)]);
  });

  test('SIU^S12 on northside-ehr: a booked Appointment with patient, practitioner and room, and its planned visit', async (ctx) => {
    const p = testPatient();
    const msg = siuS12(p);
    const [ack] = await send(ctx, 'northside-ehr', msg, { outcome: 'committed' });
    expect(ack).toContain(`MSA|AA|${controlIdOf(msg)}`);
    expectNoErr(ack);

    const patient = await patientOf(p);
    const appointment = await one<Appointment>('Appointment', { patient: ref(patient) });
    expect(appointment).toMatchObject({ status: 'booked', start: '2024-04-01T09:30:00-05:00', end: '2024-04-01T10:00:00-05:00', minutesDuration: 30 });
    const actors = appointment.participant.map((x) => x.actor?.reference ?? '');
    expect(actors).toContain(ref(patient));
    expect(actors.some((a) => a.startsWith('Practitioner/'))).toBe(true);
    expect(actors.some((a) => a.startsWith('Location/'))).toBe(true);
    const visit = await visitOf(p, 'S');
    expect(visit).toMatchObject({ status: 'planned', subject: { reference: ref(patient) }, appointment: [{ reference: ref(appointment) }] });

    const { focus } = await committedEntry(msg);
    expect(ids(focus.get('Appointment'))).toEqual([ref(appointment)]);
  });

  test('vitals ORU on icu-monitors in enhanced mode: CA first, then AA after the commit', async (ctx) => {
    const p = testPatient();
    const msg = vitalsOru(p);
    const acks = await send(ctx, 'icu-monitors', msg, { outcome: 'committed' }, 2);
    expect(acks.map(ackCode)).toEqual(['CA', 'AA']);
    expect(acks[1]).toContain(`MSA|AA|${controlIdOf(msg)}`);

    const patient = await patientOf(p);
    const encounter = await visitOf(p);
    const heartRate = await one<Observation>('Observation', { subject: ref(patient), code: 'http://loinc.org|8867-4' });
    expect(heartRate).toMatchObject({
      status: 'final',
      encounter: { reference: ref(encounter) },
      valueQuantity: { value: 72, code: '/min' },
      effectiveDateTime: '2024-03-15T12:00:00-05:00',
    });
    const { focus } = await committedEntry(msg);
    expect(focus.get('Observation')).toHaveLength(4);
    expect(ids(focus.get('Encounter'))).toEqual([ref(encounter)]);
  });

  test('an unsupported message type gets AR with an ERR segment and is recorded as rejected with its raw text', async (ctx) => {
    const msg = unsupportedQuery();
    const [ack] = await send(ctx, 'northside-adt', msg, { outcome: 'rejected' });
    expect(ackCode(ack)).toBe('AR');
    const msa = ack.split('\r').find((s) => s.startsWith('MSA|'))?.split('|');
    expect(msa?.[2]).toBe(controlIdOf(msg));
    expect(msa?.[3]).toMatch(/^Unsupported message type QRY/);
    expect(ack).toMatch(/\rERR\|\|MSH\^1\^9\|200\^Unsupported message type\^HL70357\|E\|/);

    const entries = await ledgerOf(msg);
    expect(entries).toHaveLength(1);
    expect(outcomeOf(entries[0])).toBe('rejected');
    expect(entries[0].extension?.find((e) => e.url === LedgerExtension.ackCode)?.valueCode).toBe('AR');
    expect(await readRawMessage(target.client, entries[0])).toBe(msg);
  });

  test('a data error (no PID-3) gets AE with an ERR at PID-3 and becomes a dead letter holding the raw message', async (ctx) => {
    const p = testPatient(`Nopid${testPatient().tag}`);
    const msg = adtWithoutPatientId(p);
    const [ack] = await send(ctx, 'northside-adt', msg, { outcome: 'dead-letter' });
    expect(ackCode(ack)).toBe('AE');
    expect(ack).toMatch(/\rERR\|\|PID\^1\^3\|101\^Required field missing\^HL70357\|E\|/);

    const entries = await ledgerOf(msg);
    expect(entries).toHaveLength(1);
    expect(outcomeOf(entries[0])).toBe('dead-letter');
    expect(entries[0].focus).toBeUndefined();
    expect(entries[0].extension?.find((e) => e.url === LedgerExtension.error)?.valueString).toMatch(/^PID-3 \(101\): /);
    expect(await readRawMessage(target.client, entries[0])).toBe(msg);
    // Nothing was written for the message.
    expect(await target.client.searchResources('Patient', { family: p.family })).toHaveLength(0);
  });

  test('sending the same message twice changes nothing: AA twice, one ledger duplicate, every versionId unchanged', async (ctx) => {
    const p = testPatient();
    const msg = adtA01(p);
    const [first] = await send(ctx, 'northside-adt', msg, { outcome: 'committed' });
    const before = await snapshot((await ledgerOf(msg))[0]);
    const [second] = await send(ctx, 'northside-adt', msg, { outcome: 'committed', duplicate: true });
    expect([ackCode(first), ackCode(second)]).toEqual(['AA', 'AA']);

    const entries = await ledgerOf(msg);
    expect(entries).toHaveLength(2);
    expect(entries.map(outcomeOf)).toEqual(['committed', 'committed']);
    expect(entries[1].extension?.find((e) => e.url === LedgerExtension.duplicateOf)?.valueReference?.reference).toBe(`MessageHeader/${entries[0].id}`);
    expect(entries[1].focus).toEqual(entries[0].focus);
    expect(await snapshot(entries[0])).toEqual(before);
    expect(await target.client.searchResources('Patient', { identifier: `${SYSTEMS.mrn}|${p.mrn}` })).toHaveLength(1);
  });

  test('a whole feed sent twice (same messages, then again with new control ids) leaves every resource unchanged', async (ctx) => {
    const p = testPatient();
    const feed: [string, string][] = [
      ['northside-adt', adtA01(p)],
      ['northside-ehr', ormO01(p)],
      ['acme-lab', oruR01(p)],
      ['northside-ehr', mdmT02(p)],
      ['northside-ehr', siuS12(p)],
      ['northside-adt', adtA08(p)],
    ];
    for (const [name, msg] of feed) {
      const [ack] = await send(ctx, name, msg, { outcome: 'committed' });
      expect(ackCode(ack), msg.split('\r')[0]).toBe('AA');
    }
    const before = await feedSnapshot(feed.map(([, msg]) => msg));

    // The same messages again: duplicates by sender and MSH-10, nothing written.
    for (const [name, msg] of feed) {
      const [ack] = await send(ctx, name, msg, { outcome: 'committed', duplicate: true });
      expect(ackCode(ack)).toBe('AA');
    }
    expect(await feedSnapshot(feed.map(([, msg]) => msg))).toEqual(before);

    // The same content under new control ids (a sender replaying its feed): mapped and merged
    // again, and every merge is a no-op.
    const renumbered = feed.map(([name, msg]): [string, string] => [name, msg.replace(`|${controlIdOf(msg)}|`, `|${controlId('RE')}|`)]);
    for (const [name, msg] of renumbered) {
      const [ack] = await send(ctx, name, msg, { outcome: 'committed' });
      expect(ackCode(ack)).toBe('AA');
      const entries = await ledgerOf(msg);
      expect(entries).toHaveLength(1);
      expect(entries[0].extension?.some((e) => e.url === LedgerExtension.duplicateOf)).toBe(false);
    }
    expect(await feedSnapshot(renumbered.map(([, msg]) => msg))).toEqual(before);

    // No resource exists twice.
    expect(await target.client.searchResources('Patient', { identifier: `${SYSTEMS.mrn}|${p.mrn}` })).toHaveLength(1);
    expect(await target.client.searchResources('Encounter', { identifier: `${SYSTEMS.visit}|${p.visit}` })).toHaveLength(1);
    expect(await target.client.searchResources('ServiceRequest', { identifier: `${SYSTEMS.placer}|ORD${p.tag}` })).toHaveLength(1);
    expect(await target.client.searchResources('Observation', { 'based-on': before.serviceRequest })).toHaveLength(4);
  });

  test('A08 before A01 of the same visit converges to the same Patient and Encounter as the two in order', async (ctx) => {
    const late = testPatient('Lindqvist', 'Maja');
    const inOrder = testPatient('Lindqvist', 'Maja');
    for (const msg of [adtA08(late), adtA01(late), adtA01(inOrder), adtA08(inOrder)]) {
      const [ack] = await send(ctx, 'northside-adt', msg, { outcome: 'committed' });
      expect(ackCode(ack)).toBe('AA');
    }
    const [lateState, inOrderState] = await Promise.all(
      [late, inOrder].map(async (p) => {
        const patient = await patientOf(p);
        const encounter = await visitOf(p);
        return { patient: comparable(patient), encounter: comparable(encounter) };
      })
    );
    // The A08's newer address wins in both.
    expect(lateState.patient).toMatchObject({ address: [{ line: ['48 Elm Ave', 'Apt 2'] }] });
    expect(lateState.patient).toEqual(inOrderState.patient);
    expect(lateState.encounter).toEqual(inOrderState.encounter);
  });

  test('results before the order (ORU then ORM, same placer number) converge to one ServiceRequest with the order details', async (ctx) => {
    const early = testPatient();
    const inOrder = testPatient();
    for (const [name, msg] of [
      ['acme-lab', oruR01(early)],
      ['northside-ehr', ormO01(early)],
      ['northside-ehr', ormO01(inOrder)],
      ['acme-lab', oruR01(inOrder)],
    ] as const) {
      const [ack] = await send(ctx, name, msg, { outcome: 'committed' });
      expect(ackCode(ack)).toBe('AA');
    }
    const orderOf = async (p: TestPatient): Promise<WithId<ServiceRequest>> => {
      const byPlacer = await one<ServiceRequest>('ServiceRequest', { identifier: `${SYSTEMS.placer}|ORD${p.tag}` });
      const byFiller = await one<ServiceRequest>('ServiceRequest', { identifier: `${SYSTEMS.acmeFiller}|ACC${p.tag}` });
      expect(byFiller.id).toBe(byPlacer.id);
      const report = await one<DiagnosticReport>('DiagnosticReport', { 'based-on': ref(byPlacer) });
      expect(report.result).toHaveLength(4);
      return byPlacer;
    };
    const earlyOrder = await orderOf(early);
    const inOrderOrder = await orderOf(inOrder);
    // The same order as when the messages came in order...
    expect(comparable(earlyOrder)).toEqual(comparable(inOrderOrder));
    // ...with the order message's own details: placer group, note, reason, authoring time.
    expect(earlyOrder).toMatchObject({
      requisition: { value: `GRP${early.tag}` },
      note: [{ text: 'Patient fasting since midnight.' }],
      reasonCode: [{ coding: [expect.objectContaining({ code: 'E11.9' })] }],
      authoredOn: '2024-03-15T08:45:00-05:00',
    });
  });

  test('the ledger has one entry per received message and its statistics add up', async (ctx) => {
    ctx.skip(sent.size === 0, 'no message could be sent on this target');
    const after = await ledgerStats(target.client);
    expect(after.invariantHolds).toBe(true);
    const delta = (a: LedgerCounts | undefined, b: LedgerCounts | undefined): LedgerCounts => {
      const zero = { received: 0, committed: 0, rejected: 0, deadLettered: 0, resolved: 0, duplicates: 0, replays: 0 };
      const x = a ?? zero;
      const y = b ?? zero;
      return {
        received: x.received - y.received,
        committed: x.committed - y.committed,
        rejected: x.rejected - y.rejected,
        deadLettered: x.deadLettered - y.deadLettered,
        resolved: x.resolved - y.resolved,
        duplicates: x.duplicates - y.duplicates,
        replays: x.replays - y.replays,
      };
    };
    const bySender = (stats: LedgerStats, label: string): LedgerCounts | undefined => stats.senders.find((s) => senderLabel(s.sender) === label);
    for (const [label, counts] of sent) {
      expect(delta(bySender(after, label), bySender(statsBefore, label)), label).toEqual(counts);
    }
    const received = [...sent.values()].reduce((sum, c) => sum + c.received, 0);
    expect(after.total.received - statsBefore.total.received).toBe(received);
  });

  /** `Type/id` → versionId of every resource a ledger entry points at. */
  async function snapshot(entry: MessageHeader): Promise<Record<string, string | undefined>> {
    const result: Record<string, string | undefined> = {};
    for (const focus of entry.focus ?? []) {
      const resource = await target.client.readReference(focus as { reference: string });
      result[ref(resource)] = resource.meta?.versionId;
    }
    return result;
  }

  /** Versions of everything a feed's committed messages wrote, and the feed's ServiceRequest. */
  async function feedSnapshot(messages: string[]): Promise<{ versions: Record<string, string | undefined>; serviceRequest: string }> {
    const versions: Record<string, string | undefined> = {};
    for (const msg of messages) {
      const entries = await ledgerOf(msg);
      Object.assign(versions, await snapshot(entries[0]));
    }
    const serviceRequest = Object.keys(versions).find((k) => k.startsWith('ServiceRequest/')) as string;
    return { versions, serviceRequest };
  }
});

/**
 * A resource in a form comparable across two test patients: no id, meta or business
 * identifiers (their values differ by design), and references to the patient's own resources
 * (Patient, Encounter, Condition) reduced to their type. Shared resources (Practitioners,
 * Locations) keep their ids: both patients must point at the same ones.
 */
function comparable(resource: Resource): unknown {
  const own = /^(Patient|Encounter|Condition|Observation|ServiceRequest|DiagnosticReport)\/[^/]+$/;
  const walk = (value: unknown): unknown => {
    if (Array.isArray(value)) {
      return value.map(walk);
    }
    if (value && typeof value === 'object') {
      const out: Record<string, unknown> = {};
      for (const [k, v] of Object.entries(value)) {
        out[k] = k === 'reference' && typeof v === 'string' && own.test(v) ? v.split('/')[0] : walk(v);
      }
      return out;
    }
    return value;
  };
  const { id: _id, meta: _meta, identifier: _identifier, ...rest } = resource as Resource & { identifier?: unknown };
  const result = walk(rest) as Record<string, unknown>;
  if ('requisition' in result) {
    delete result.requisition;
  }
  return result;
}
