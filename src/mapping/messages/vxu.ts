import type { Hl7Message, Hl7Segment } from '@medplum/core';
import type { Patient } from '@medplum/fhirtypes';
import { Hl7ErrorCode } from '../../hl7/ack.ts';
import type { MappingContext } from '../context.ts';
import type { MessagePlan, ResourcePlan } from '../plan.ts';
import { asFill, MappingError } from '../plan.ts';
import { applyImmunizationObservations } from '../segments/immunization-obx.ts';
import { mapPatient } from '../segments/pid.ts';
import { mapEncounter } from '../segments/pv1.ts';
import type { ImmunizationOrderGroup } from '../segments/rxa.ts';
import { mapImmunization } from '../segments/rxa.ts';
import type { MessageMappers } from './types.ts';

/**
 * VXU^V04 (unsolicited vaccination record update; IG VXU_V04 map, CDC IIS v2.5.1 guide style,
 * also v2.3/2.4 senders without ORC): PID → Patient and PV1 → Encounter (when it identifies a
 * visit), both merged as `fill` since ADT is the authority for them, and per ORDER group
 * (`[ORC] [TQ1] RXA [RXR] [OBX [NTE]]...`) an Immunization with its practitioners, manufacturer
 * and observations. A VXU without any RXA records nothing and is refused. PD1, NK1 and IN1 are
 * not mapped here (NK1 belongs to the ADT family's NK1 map).
 * @param message - The message.
 * @param ctx - The mapping context.
 * @returns The plan.
 */
function mapVxuV04(message: Hl7Message, ctx: MappingContext): MessagePlan {
  const groups = orderGroups(message, ctx);
  // Demographics are ADT's to assert: this feed only fills in what the record lacks.
  const patient: ResourcePlan<Patient> = asFill(mapPatient(message.getSegment('PID'), ctx));
  if (groups.length === 0) {
    throw new MappingError({
      code: Hl7ErrorCode.SegmentSequence,
      text: 'RXA segment missing: the VXU carries no immunization',
      location: { segment: 'RXA' },
    });
  }
  const plans: ResourcePlan[] = [patient];
  const encounter = mapEncounter(message.getSegment('PV1'), message.getSegment('PV2'), patient.key, patient.identifiers[0], ctx, plans);
  if (encounter) {
    // The IIS/EHR feed is not authoritative for the visit (ADT is): it only fills what is missing.
    plans.push({ ...encounter, merge: 'fill' });
  }
  for (const group of groups) {
    const immunization = mapImmunization(
      group,
      { patientKey: patient.key, patientIdentifier: patient.identifiers[0], encounterKey: encounter?.key },
      ctx,
      plans
    );
    const repeated = plans.find(
      (p) => p.resource.resourceType === 'Immunization' && p.identifiers.some((i) => immunization.identifiers.some((j) => j.system === i.system && j.value === i.value))
    );
    if (repeated) {
      // The same dose twice in one message (same order number, or same patient, vaccine and date).
      ctx.warn({
        code: Hl7ErrorCode.DuplicateKey,
        text: `RXA repeats the immunization of an earlier ORDER group (${repeated.key}); recorded once`,
        location: { segment: 'RXA', sequence: group.sequence },
      });
      continue;
    }
    plans.push(immunization);
    applyImmunizationObservations(group.observations, immunization, patient.key, ctx, plans);
  }
  return { resources: plans, warnings: ctx.warnings };
}

/**
 * Splits the message into ORDER groups. An RXA starts a group and takes the ORC before it (ORC is
 * optional before v2.5); RXR, OBX and NTE belong to the current group. ORCs without an RXA and
 * OBXs outside a group are reported and ignored.
 */
function orderGroups(message: Hl7Message, ctx: MappingContext): ImmunizationOrderGroup[] {
  const groups: {
    orc?: Hl7Segment;
    orcSequence?: number;
    rxa: Hl7Segment;
    rxr?: Hl7Segment;
    observations: { obx: Hl7Segment; ntes: Hl7Segment[]; sequence: number }[];
    sequence: number;
  }[] = [];
  let pendingOrc: Hl7Segment | undefined;
  let current: (typeof groups)[number] | undefined;
  const counts = new Map<string, number>();
  const orphanOrc = (): void => {
    if (pendingOrc) {
      ctx.warn({ code: Hl7ErrorCode.SegmentSequence, text: 'ORC without an RXA ignored', location: { segment: 'ORC', sequence: counts.get('ORC') } });
    }
  };
  for (const segment of message.segments) {
    const sequence = (counts.get(segment.name) ?? 0) + 1;
    counts.set(segment.name, sequence);
    switch (segment.name) {
      case 'ORC':
        orphanOrc();
        pendingOrc = segment;
        current = undefined;
        break;
      case 'RXA':
        current = { orc: pendingOrc, orcSequence: pendingOrc ? counts.get('ORC') : undefined, rxa: segment, observations: [], sequence };
        pendingOrc = undefined;
        groups.push(current);
        break;
      case 'RXR':
        if (current && !current.rxr) {
          current.rxr = segment;
        }
        break;
      case 'OBX':
        if (current) {
          current.observations.push({ obx: segment, ntes: [], sequence });
        } else {
          ctx.warn({
            code: Hl7ErrorCode.SegmentSequence,
            text: 'OBX outside an ORDER group (no RXA before it) ignored',
            location: { segment: 'OBX', sequence },
          });
        }
        break;
      case 'NTE': {
        const last = current?.observations.at(-1);
        if (last) {
          last.ntes.push(segment);
        }
        break;
      }
    }
  }
  orphanOrc();
  return groups;
}

/** Message maps of the vaccination family. */
export const vxuMappers: MessageMappers = {
  'VXU^V04': mapVxuV04,
};
