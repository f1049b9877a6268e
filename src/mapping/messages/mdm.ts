import type { Hl7Message } from '@medplum/core';
import type { Patient } from '@medplum/fhirtypes';
import { Hl7ErrorCode } from '../../hl7/ack.ts';
import type { MappingContext } from '../context.ts';
import type { MessagePlan, ResourcePlan } from '../plan.ts';
import { asFill, MappingError } from '../plan.ts';
import { documentContent } from '../segments/document-obx.ts';
import { mapPatient } from '../segments/pid.ts';
import { mapEncounter } from '../segments/pv1.ts';
import type { DocumentOptions } from '../segments/txa.ts';
import { mapDocumentReference } from '../segments/txa.ts';
import type { MessageMapper, MessageMappers } from './types.ts';

/**
 * MDM with content (IG MDM_T02 map, which also covers T06 by structure): PID → Patient and PV1
 * → Encounter (when it identifies a visit), both merged as `fill` since ADT is the authority for
 * them, TXA + OBX → one DocumentReference keyed by TXA-12. T02 is
 * an original document; T06 an addendum, a document of its own (its own TXA-12) that `appends`
 * to its parent (TXA-13). The message is refused when TXA, TXA-12 or any readable content is
 * missing: DocumentReference.content is required, and a document without a number could not be
 * found again.
 * @param parentRelation - How the event's document relates to TXA-13.
 * @returns The message map.
 */
function mdmWithContent(parentRelation: DocumentOptions['parentRelation']): MessageMapper {
  return (message: Hl7Message, ctx: MappingContext): MessagePlan => {
    const txa = message.getSegment('TXA');
    if (!txa) {
      throw new MappingError({ code: Hl7ErrorCode.SegmentSequence, text: 'TXA segment missing', location: { segment: 'TXA' } });
    }
    // Demographics are ADT's to assert: this feed only fills in what the record lacks.
    const patient: ResourcePlan<Patient> = asFill(mapPatient(message.getSegment('PID'), ctx));
    const plans: ResourcePlan[] = [patient];
    const encounter = mapEncounter(message.getSegment('PV1'), message.getSegment('PV2'), patient.key, patient.identifiers[0], ctx, plans);
    if (encounter) {
      // A document feed is not authoritative for the visit (ADT is): it only fills what is missing.
      plans.push({ ...encounter, merge: 'fill' });
    }
    const body = documentContent(message.getAllSegments('OBX'), ctx);
    if (body.content.length === 0) {
      throw new MappingError({
        code: Hl7ErrorCode.RequiredFieldMissing,
        text: 'OBX segment missing: the document has no readable content',
        location: { segment: 'OBX' },
      });
    }
    plans.push(
      mapDocumentReference(txa, body, { patientKey: patient.key, encounterKey: encounter?.key, parentRelation }, ctx, plans)
    );
    return { resources: plans, warnings: ctx.warnings };
  };
}

/** Message maps of the medical-documents family. */
export const mdmMappers: MessageMappers = {
  /** Original document notification and content. */
  'MDM^T02': mdmWithContent(undefined),
  /** Document addendum notification and content. */
  'MDM^T06': mdmWithContent('appends'),
};
