import type { Hl7Message, Hl7Segment } from '@medplum/core';
import type { Identifier } from '@medplum/fhirtypes';
import type { ErrorLocation } from '../hl7/ack.ts';
import type { MappingContext } from './context.ts';
import { identifierToken } from './keys.ts';
import type { ResourcePlan } from './plan.ts';
import { asFill } from './plan.ts';
import { mapPatient } from './segments/pid.ts';
import { mapEncounter } from './segments/pv1.ts';

/**
 * Segment groups of the order and result messages (ORU^R01, ORM^O01, OML^O21), read by position
 * the way the abstract message syntax nests them. Every ORC opens its own order group and an OBR
 * that follows another OBR (without an ORC between them) opens a new group without an ORC, so an
 * ORC never applies to another group's OBR (the MS FHIR-Converter #605/#325 defect). OBX
 * segments after an SPM belong to that specimen (the LinuxForHealth #533 defect loses them).
 */

/** A segment with its occurrence number among the message's segments of that name (ERL-2). */
export interface SegmentRef {
  readonly segment: Hl7Segment;
  /** 1-based occurrence of this segment name in the message. */
  readonly sequence: number;
}

/** An OBX and the NTE segments that follow it. */
export interface ObservationGroup {
  readonly obx: SegmentRef;
  readonly notes: SegmentRef[];
}

/** An SPM, the OBX segments about the specimen, and NTE segments directly after the SPM. */
export interface SpecimenGroup {
  readonly spm: SegmentRef;
  readonly observations: ObservationGroup[];
  readonly notes: SegmentRef[];
}

/** One order: ORC and/or OBR (or another order detail segment) with what belongs to them. */
export interface OrderGroup {
  orc?: SegmentRef;
  obr?: SegmentRef;
  /** An order detail segment other than OBR (RXO, RXE, ODS, ODT, RQD, RQ1): not a lab order. */
  otherDetail?: SegmentRef;
  /** NTE segments after the ORC/OBR, before any OBX. */
  readonly notes: SegmentRef[];
  readonly timing: SegmentRef[];
  readonly diagnoses: SegmentRef[];
  readonly observations: ObservationGroup[];
  readonly specimens: SpecimenGroup[];
}

/** A patient (PID and its visit) and the orders that follow it. */
export interface PatientGroup {
  pid?: SegmentRef;
  pv1?: SegmentRef;
  pv2?: SegmentRef;
  /** OBX segments of the patient (before any order), with their notes. */
  readonly observations: ObservationGroup[];
  readonly orders: OrderGroup[];
}

/** The groups of a message. */
export interface MessageGroups {
  readonly patients: PatientGroup[];
}

const ORDER_DETAILS = new Set(['RXO', 'RXE', 'ODS', 'ODT', 'RQD', 'RQ1']);

/**
 * Reads the patient, order, observation and specimen groups of an order or result message.
 * Segments the maps do not use (SFT, PD1, NK1, IN1, GT1, AL1, CTD, FT1, CTI, BLG, Z-segments...)
 * are skipped; NTE segments go to the group they follow.
 * @param message - The message.
 * @returns The groups, in message order.
 */
export function readOrderGroups(message: Hl7Message): MessageGroups {
  const patients: PatientGroup[] = [];
  const counts = new Map<string, number>();
  let patient: PatientGroup | undefined;
  let order: OrderGroup | undefined;
  let specimen: SpecimenGroup | undefined;
  // Where an NTE goes: the last OBX, specimen or order; undefined = message or patient level (not mapped).
  let notesTarget: SegmentRef[] | undefined;

  const currentPatient = (): PatientGroup => {
    if (!patient) {
      patient = { observations: [], orders: [] };
      patients.push(patient);
    }
    return patient;
  };
  const newOrder = (): OrderGroup => {
    order = { notes: [], timing: [], diagnoses: [], observations: [], specimens: [] };
    specimen = undefined;
    currentPatient().orders.push(order);
    return order;
  };

  for (const segment of message.segments) {
    const name = segment.name;
    const sequence = (counts.get(name) ?? 0) + 1;
    counts.set(name, sequence);
    const ref: SegmentRef = { segment, sequence };
    switch (name) {
      case 'PID':
        // A PID after orders starts the next PATIENT_RESULT (ORU) or is a prior-result patient (OML).
        patient = { pid: ref, observations: [], orders: [] };
        patients.push(patient);
        order = undefined;
        specimen = undefined;
        notesTarget = undefined;
        break;
      case 'PV1':
        if (!order) {
          currentPatient().pv1 = ref;
        }
        break;
      case 'PV2':
        if (!order) {
          currentPatient().pv2 = ref;
        }
        break;
      case 'ORC': {
        // Specimen-first messages (OML^O33) open the order with its SPM: the ORC joins it.
        const target = order && !order.orc && !order.obr && !order.otherDetail && order.observations.length === 0 ? order : newOrder();
        target.orc = ref;
        specimen = undefined;
        notesTarget = target.notes;
        break;
      }
      case 'OBR': {
        const target = order && !order.obr && !order.otherDetail && order.observations.length === 0 ? order : newOrder();
        target.obr = ref;
        specimen = undefined;
        notesTarget = target.notes;
        break;
      }
      case 'TQ1':
        (order ?? newOrder()).timing.push(ref);
        break;
      case 'DG1':
        if (order) {
          order.diagnoses.push(ref);
        }
        break;
      case 'SPM': {
        // newOrder() closes the current specimen, so the owner comes first.
        const owner = order ?? newOrder();
        specimen = { spm: ref, observations: [], notes: [] };
        owner.specimens.push(specimen);
        notesTarget = specimen.notes;
        break;
      }
      case 'OBX': {
        const group: ObservationGroup = { obx: ref, notes: [] };
        if (specimen) {
          specimen.observations.push(group);
        } else if (order) {
          order.observations.push(group);
        } else {
          currentPatient().observations.push(group);
        }
        notesTarget = group.notes;
        break;
      }
      case 'NTE':
        notesTarget?.push(ref);
        break;
      default:
        if (ORDER_DETAILS.has(name)) {
          const target = order && !order.obr && !order.otherDetail ? order : newOrder();
          target.otherDetail = ref;
          notesTarget = target.notes;
        }
        break;
    }
  }
  return { patients };
}

/**
 * @param ref - A segment of the message.
 * @param field - Optional field number.
 * @returns The ERR-2 location of the segment (or one of its fields).
 */
export function at(ref: SegmentRef, field?: number): ErrorLocation {
  return field === undefined
    ? { segment: ref.segment.name, sequence: ref.sequence }
    : { segment: ref.segment.name, sequence: ref.sequence, field };
}

/** Plan keys of a patient group's Patient and Encounter. */
export interface SubjectKeys {
  readonly patientKey: string;
  readonly encounterKey?: string;
}

/**
 * Plans the Patient (PID) and Encounter (PV1/PV2, when it identifies a visit) of a patient group
 * for an order or result message. Order and result feeds are not authoritative for demographics
 * or visits (ADT is), so both are merged with `fill`: they create what is missing and never
 * overwrite what the ADT feed wrote. A patient or visit already planned by an earlier group of
 * the same message (same identifiers) is reused.
 * @param group - The patient group.
 * @param index - 0-based position of the group (keys `Patient`, `Patient/2`, ...).
 * @param ctx - The mapping context.
 * @param plans - Plans collected so far; the Patient and Encounter are added.
 * @returns The plan keys.
 */
export function mapSubject(group: PatientGroup, index: number, ctx: MappingContext, plans: ResourcePlan[]): SubjectKeys {
  const suffix = index === 0 ? '' : `/${index + 1}`;
  const patient = mapPatient(group.pid?.segment, ctx, 'Patient' + suffix);
  const patientKey = addOrReuse(plans, asFill(patient));
  const encounter = mapEncounter(group.pv1?.segment, group.pv2?.segment, patientKey, patient.identifiers[0], ctx, plans, {
    key: 'Encounter' + suffix,
  });
  const encounterKey = encounter ? addOrReuse(plans, asFill(encounter)) : undefined;
  return encounterKey ? { patientKey, encounterKey } : { patientKey };
}

function addOrReuse(plans: ResourcePlan[], plan: ResourcePlan): string {
  const tokens = new Set(plan.identifiers.map((i: Identifier) => identifierToken(i)));
  const same = plans.find((p) => p.resource.resourceType === plan.resource.resourceType && p.identifiers.some((i) => tokens.has(identifierToken(i))));
  if (same) {
    return same.key;
  }
  plans.push(plan);
  return plan.key;
}
