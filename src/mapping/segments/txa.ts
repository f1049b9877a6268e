import type { Hl7Segment } from '@medplum/core';
import type { Coding, DocumentReference, Encounter, Identifier, Patient, Practitioner, Reference } from '@medplum/fhirtypes';
import { Hl7ErrorCode } from '../../hl7/ack.ts';
import { isNullField, rep, reps, val } from '../../hl7/fields.ts';
import type { MappingContext } from '../context.ts';
import { cweToCodeableConcept } from '../datatypes/coding.ts';
import type { ResourcePlan } from '../plan.ts';
import { localRef, MappingError } from '../plan.ts';
import type { DocumentContent } from './document-obx.ts';
import { scopedEiIdentifier } from './entity-id.ts';
import { practitionerRef } from './practitioner.ts';

/** HL7 table 0271 document completion status → DocumentReference.docStatus. */
const DOC_STATUS: Record<string, DocumentReference['docStatus']> = {
  DI: 'preliminary',
  IP: 'preliminary',
  IN: 'preliminary',
  PA: 'preliminary',
  DO: 'final',
  AU: 'final',
  LA: 'final',
  CA: 'entered-in-error',
};

/** HL7 table 0273 document availability status → DocumentReference.status. */
const AVAILABILITY: Record<string, DocumentReference['status']> = {
  AV: 'current',
  UN: 'current',
  OB: 'superseded',
  CA: 'entered-in-error',
};

/** HL7 table 0272 document confidentiality status → v3 Confidentiality (IG map). */
const CONFIDENTIALITY: Record<string, Coding> = {
  V: { system: 'http://terminology.hl7.org/CodeSystem/v3-Confidentiality', code: 'V', display: 'very restricted' },
  R: { system: 'http://terminology.hl7.org/CodeSystem/v3-Confidentiality', code: 'R', display: 'restricted' },
  U: { system: 'http://terminology.hl7.org/CodeSystem/v3-Confidentiality', code: 'N', display: 'normal' },
};

/** What {@link mapDocumentReference} needs besides TXA. */
export interface DocumentOptions {
  readonly patientKey: string;
  readonly encounterKey?: string;
  /** How the document relates to its parent (TXA-13): `appends` for an addendum (T06). */
  readonly parentRelation?: 'appends' | 'replaces';
}

/**
 * @param txa - The TXA segment.
 * @param ctx - The mapping context.
 * @returns TXA-12 (unique document number) as an identifier: the document's match key.
 */
export function documentNumber(txa: Hl7Segment, ctx: MappingContext): Identifier {
  const identifier = scopedEiIdentifier(rep(txa, 12), ctx, 'document', { segment: 'TXA', field: 12 });
  if (!identifier) {
    // A document without its number could never be found again to be amended or replaced.
    throw new MappingError({
      code: Hl7ErrorCode.RequiredFieldMissing,
      text: 'TXA-12 (unique document number) is missing',
      location: { segment: 'TXA', field: 12 },
    });
  }
  return identifier;
}

/**
 * TXA (+ the content read from OBX) → DocumentReference (IG TXA[DocumentReference] map). TXA-12 →
 * masterIdentifier and identifier (the match key), TXA-16 file name → identifier, TXA-2 → type
 * (HL7 table 0270 unless the sender names a system, e.g. LN), TXA-6 origination date/time (else
 * TXA-4) → date when it has a time (an instant) and → attachment.creation, TXA-4 activity
 * date/time → context.period.start, TXA-25 → description and attachment.title,
 * TXA-9 → author, TXA-10 → authenticator, TXA-17 → docStatus (DI/IP/IN/PA preliminary, DO/AU/LA
 * final, CA entered-in-error), TXA-19 → status (AV/UN current, OB superseded, CA
 * entered-in-error; a canceled TXA-17 also makes it entered-in-error), TXA-18 → securityLabel,
 * TXA-13 parent document → relatesTo (by identifier) when the event
 * says how the document relates to it.
 * @param txa - The TXA segment.
 * @param body - The content and uploads read from the OBX segments (at least one entry).
 * @param options - Patient/Encounter keys and the parent relation.
 * @param ctx - The mapping context.
 * @param plans - Plans collected so far (authors are added).
 * @returns The DocumentReference plan (merge `overlay`).
 */
export function mapDocumentReference(
  txa: Hl7Segment,
  body: DocumentContent,
  options: DocumentOptions,
  ctx: MappingContext,
  plans: ResourcePlan[]
): ResourcePlan<DocumentReference> {
  const number = documentNumber(txa, ctx);
  const identifiers: Identifier[] = [number];
  const fileName = val(txa, 16).trim();
  if (fileName) {
    const system = ctx.identifierSystem({ namespace: '', universalId: '', universalIdType: '' }, 'document-file-name');
    identifiers.push({ system, value: fileName });
  }
  const completion = val(txa, 17).trim().toUpperCase();
  const availability = val(txa, 19).trim().toUpperCase();
  const document: DocumentReference = {
    resourceType: 'DocumentReference',
    masterIdentifier: number,
    identifier: identifiers,
    status: completion === 'CA' ? 'entered-in-error' : (AVAILABILITY[availability] ?? 'current'),
    subject: localRef<Patient>(options.patientKey),
    content: body.content,
  };
  const docStatus = DOC_STATUS[completion];
  if (docStatus) {
    document.docStatus = docStatus;
  } else if (completion) {
    ctx.warn({
      code: Hl7ErrorCode.DataType,
      text: `TXA-17 (document completion status) '${completion}' is not in HL7 table 0271; docStatus omitted`,
      location: { segment: 'TXA', field: 17 },
    });
  }
  const typeRep = rep(txa, 2);
  const type = typeRep ? cweToCodeableConcept(typeRep, ctx, 'HL70270') : undefined;
  if (type) {
    document.type = type;
  }
  // Each time is read once (one warning at most); DocumentReference.date is an instant, so it
  // takes the first of TXA-6 and TXA-4 that has a time.
  const origination = ctx.dateTime(val(txa, 6), { segment: 'TXA', field: 6 });
  const activity = ctx.dateTime(val(txa, 4), { segment: 'TXA', field: 4 });
  const instant = [origination, activity].find((t) => t?.includes('T'));
  if (instant) {
    document.date = instant;
  } else if (origination || activity) {
    ctx.warn({
      code: Hl7ErrorCode.DataType,
      text: 'TXA-6/TXA-4 have a date but no time; DocumentReference.date (an instant) omitted',
      location: { segment: 'TXA', field: origination ? 6 : 4 },
    });
  }
  const authors = reps(txa, 9)
    .map((xcn) => practitionerRef(xcn, ctx, { segment: 'TXA', field: 9 }, plans))
    .filter((r): r is Reference<Practitioner> => r !== undefined);
  if (authors.length) {
    document.author = authors;
  }
  const authenticator = practitionerRef(rep(txa, 10), ctx, { segment: 'TXA', field: 10 }, plans);
  if (authenticator) {
    document.authenticator = authenticator;
  }
  const security = CONFIDENTIALITY[val(txa, 18).trim().toUpperCase()];
  if (security) {
    document.securityLabel = [{ coding: [security] }];
  }
  const title = val(txa, 25).trim();
  if (title) {
    document.description = title;
  }
  // The attachments carry the document's title (the Binary's file name) and origination time.
  document.content = body.content.map((c) => ({
    ...c,
    attachment: { ...c.attachment, ...(title ? { title } : {}), ...(origination ? { creation: origination } : {}) },
  }));
  const context: NonNullable<DocumentReference['context']> = {};
  if (options.encounterKey) {
    context.encounter = [localRef<Encounter>(options.encounterKey)];
  }
  if (activity) {
    context.period = { start: activity };
  }
  if (Object.keys(context).length) {
    document.context = context;
  }
  const parent = scopedEiIdentifier(rep(txa, 13), ctx, 'document', { segment: 'TXA', field: 13 });
  if (parent && options.parentRelation) {
    document.relatesTo = [{ code: options.parentRelation, target: { type: 'DocumentReference', identifier: parent } }];
  } else if (parent) {
    ctx.warn({
      code: Hl7ErrorCode.DataType,
      text: 'TXA-13 (parent document number) is not used for this event; ignored',
      location: { segment: 'TXA', field: 13 },
    });
  } else if (options.parentRelation) {
    ctx.warn({
      code: Hl7ErrorCode.RequiredFieldMissing,
      text: 'TXA-13 (parent document number) is missing; the document is not linked to its parent',
      location: { segment: 'TXA', field: 13 },
    });
  }

  const clear = [...(isNullField(txa, 10) ? ['authenticator'] : []), ...(isNullField(txa, 25) ? ['description'] : [])];
  return {
    key: 'DocumentReference',
    resource: document,
    identifiers: [number],
    merge: 'overlay',
    ...(clear.length ? { clear } : {}),
    ...(body.uploads.length ? { uploads: body.uploads } : {}),
  };
}
