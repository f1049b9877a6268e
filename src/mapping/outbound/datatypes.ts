import type { CodeableConcept, Coding, HumanName, Identifier, Practitioner } from '@medplum/fhirtypes';
import { HUB_SID } from '../../constants.ts';
import { EMPTY_MESSAGE_HEADER } from '../../hl7/message.ts';
import type { MappingConfig } from '../context.ts';
import { MappingContext } from '../context.ts';
import type { Component, Repetition } from './encode.ts';

/**
 * FHIR datatypes → HL7 v2 datatypes (CX, EI, HD, CWE, XPN, XCN), each the inverse of the inbound
 * datatype map beside it (`../datatypes/`). Identifier systems and code systems are turned back
 * into assigning authorities and coding-system names by asking the inbound map itself: a
 * candidate is used only when the inbound `MappingContext`, reading a reply from the receiver,
 * resolves it to the very same system. So whatever the receiver echoes (an order number, a
 * patient id, a local test code) is keyed by the hub exactly as the resource it came from.
 */

/** An HD (hierarchic designator): namespace id, universal id, universal id type. */
export interface HierarchicDesignator {
  readonly namespace: string;
  readonly universalId: string;
  readonly universalIdType: string;
}

/** The system of identifier types (table 0203). */
const V2_0203 = 'http://terminology.hl7.org/CodeSystem/v2-0203';

/**
 * The inbound mapping context of a reply from the receiver: identifier systems and code systems
 * are resolved as they will be when the receiver's messages (results, acknowledgements) come back.
 * @param config - The mapping configuration (NamingSystems).
 * @param receiver - The receiving application and facility of the outbound message.
 * @param receiver.application - MSH-5.1.
 * @param receiver.facility - MSH-6.1.
 * @returns The context.
 */
export function replyContext(config: MappingConfig, receiver: { application: string; facility: string }): MappingContext {
  return new MappingContext({ ...EMPTY_MESSAGE_HEADER, sendingApplication: receiver.application, sendingFacility: receiver.facility }, config);
}

const EMPTY_HD: HierarchicDesignator = { namespace: '', universalId: '', universalIdType: '' };

/**
 * An identifier system → the assigning authority to send it with (the inverse of
 * `MappingContext.identifierSystem`). Candidates, most interoperable first: the NamingSystem that
 * lists the system (its namespace id and OID, or either), `urn:oid:`/`urn:uuid:` as ISO/UUID
 * universal ids, a hub-scoped system of a bare namespace as that namespace, no authority for an
 * id local to the receiver itself, and finally the system URI as a universal id of type URI. The
 * first candidate that reads back as the same system wins; a system that a NamingSystem lists
 * only as an alias reads back as that NamingSystem's preferred one.
 * @param system - The identifier system.
 * @param typeCode - The identifier type the inbound map scopes an authority-less id by (CX.5,
 * PLAC for ORC-2, FILL for ORC-3...).
 * @param ctx - The reply context ({@link replyContext}).
 * @param config - The mapping configuration.
 * @returns The HD, or undefined when no HD can name the system.
 */
export function assigningAuthority(system: string, typeCode: string, ctx: MappingContext, config: MappingConfig): HierarchicDesignator | undefined {
  const listed = config.namingSystems.find((ns) => (ns.uniqueId ?? []).some((u) => u.type === 'uri' && u.value === system));
  const fromNamingSystem: HierarchicDesignator[] = [];
  if (listed) {
    const ids = [...(listed.uniqueId ?? [])].sort((a, b) => Number(Boolean(b.preferred)) - Number(Boolean(a.preferred)));
    const namespace = ids.find((u) => u.type === 'other')?.value ?? '';
    const oid = ids.find((u) => u.type === 'oid')?.value ?? '';
    if (namespace && oid) {
      fromNamingSystem.push({ namespace, universalId: oid, universalIdType: 'ISO' });
    }
    if (namespace) {
      fromNamingSystem.push({ namespace, universalId: '', universalIdType: '' });
    }
    if (oid) {
      fromNamingSystem.push({ namespace: '', universalId: oid, universalIdType: 'ISO' });
    }
  }
  const candidates: HierarchicDesignator[] = [...fromNamingSystem];
  if (system.startsWith('urn:oid:')) {
    candidates.push({ namespace: '', universalId: system.slice('urn:oid:'.length), universalIdType: 'ISO' });
  }
  if (system.startsWith('urn:uuid:')) {
    candidates.push({ namespace: '', universalId: system.slice('urn:uuid:'.length), universalIdType: 'UUID' });
  }
  const hubNamespace = `${HUB_SID}/assigning-authority/`;
  if (system.startsWith(hubNamespace) && system.length > hubNamespace.length) {
    candidates.push({ namespace: system.slice(hubNamespace.length), universalId: '', universalIdType: '' });
  }
  candidates.push(EMPTY_HD, { namespace: '', universalId: system, universalIdType: 'URI' });
  // The probe's warnings (unmapped namespaces) belong to no message: a throwaway context.
  const probe = new MappingContext(ctx.header, config);
  const exact = candidates.find((hd) => probe.identifierSystem(hd, typeCode) === system);
  return exact ?? fromNamingSystem[0];
}

/**
 * @param hd - An HD.
 * @returns The HD as subcomponents (inside CX.4, XCN.9).
 */
export function hdSubcomponents(hd: HierarchicDesignator): readonly string[] {
  return [hd.namespace, hd.universalId, hd.universalIdType];
}

/**
 * @param identifier - An identifier.
 * @returns Its type code from table 0203 (or an uncoded type's code), '' when untyped.
 */
export function identifierTypeCode(identifier: Identifier): string {
  const codings = identifier.type?.coding ?? [];
  return (codings.find((c) => c.system === V2_0203) ?? codings.find((c) => !c.system))?.code?.trim() ?? '';
}

/**
 * @param identifier - An identifier.
 * @param code - A table 0203 code, e.g. PLAC.
 * @returns True when the identifier's type is that code.
 */
export function hasIdentifierType(identifier: Identifier, code: string): boolean {
  return identifierTypeCode(identifier).toUpperCase() === code;
}

/**
 * Identifier → EI (order numbers: ORC-2/3/4, OBR-2/3): value ^ namespace ^ universal id ^ type.
 * The inverse of `eiToIdentifier`.
 * @param identifier - The identifier (with a system and a value).
 * @param typeCode - The type the inbound map reads the field as (PLAC, FILL, PGN).
 * @param ctx - The reply context.
 * @param config - The mapping configuration.
 * @returns The EI, or undefined when the identifier has no value, no system, or a system no HD names.
 */
export function identifierToEi(identifier: Identifier, typeCode: string, ctx: MappingContext, config: MappingConfig): Repetition | undefined {
  const value = identifier.value?.trim();
  const hd = value && identifier.system ? assigningAuthority(identifier.system, typeCode, ctx, config) : undefined;
  return value && hd ? [value, hd.namespace, hd.universalId, hd.universalIdType] : undefined;
}

/**
 * Identifier → CX (PID-3, PV1-19, SPM-30): value, CX.4 assigning authority (HD subcomponents),
 * CX.5 type, CX.7/CX.8 period. The inverse of `cxToIdentifier`.
 * @param identifier - The identifier.
 * @param ctx - The reply context.
 * @param config - The mapping configuration.
 * @param defaultTypeCode - The type the inbound map gives the field when CX.5 is empty (VN for PV1-19).
 * @returns The CX, or undefined when the identifier has no value, no system, or a system no HD names.
 */
export function identifierToCx(identifier: Identifier, ctx: MappingContext, config: MappingConfig, defaultTypeCode = ''): Repetition | undefined {
  const value = identifier.value?.trim();
  const typeCode = identifierTypeCode(identifier);
  const hd = value && identifier.system ? assigningAuthority(identifier.system, typeCode || defaultTypeCode, ctx, config) : undefined;
  if (!value || !hd) {
    return undefined;
  }
  const start = identifier.period?.start?.slice(0, 10).replaceAll('-', '') ?? '';
  const end = identifier.period?.end?.slice(0, 10).replaceAll('-', '') ?? '';
  return [value, '', '', hdSubcomponents(hd), typeCode, '', start, end];
}

/**
 * Names of table 0396 the hub writes, preferred first for systems that have several (the inbound
 * map reads all of them); their URIs come from the inbound map itself.
 */
const CODING_SYSTEM_NAMES = [
  'LN',
  'SCT',
  'I10',
  'I10P',
  'I9C',
  'C4',
  'HCPCS',
  'CVX',
  'MVX',
  'NDC',
  'RXNORM',
  'UCUM',
  'NPI',
  'ISO3166',
  'ISO639',
  'NUCCPID',
  'UML',
  'NCIT',
];

/**
 * A code system → its CWE coding-system name (the inverse of `MappingContext.codeSystem`): a
 * table 0396 name (LN for LOINC), `HL7nnnn` for an HL7 table, the table name of a local code of
 * the receiver itself, else the system URI (which the hub reads back as is; other receivers see
 * an unknown coding system rather than a code silently moved into theirs).
 * @param system - The code system URI.
 * @param ctx - The reply context.
 * @returns The name, or undefined when none reads back as the system.
 */
export function codingSystemName(system: string, ctx: MappingContext): string | undefined {
  const candidates = [...CODING_SYSTEM_NAMES];
  const table = /^http:\/\/terminology\.hl7\.org\/CodeSystem\/v2-(\d{4})$/.exec(system);
  if (table) {
    candidates.push(`HL7${table[1]}`);
  }
  if (system.startsWith(`${HUB_SID}/local/`)) {
    candidates.push(system.slice(system.lastIndexOf('/') + 1));
  }
  candidates.push(system);
  return candidates.find((name) => ctx.codeSystem(name) === system);
}

/** CWE in v2.5.1 has two coding triplets (CWE.1-3 and CWE.4-6); the third came with v2.7. */
const CWE_TRIPLETS = 2;

/**
 * CodeableConcept → CWE (the inverse of `cweToCodeableConcept`): the first codings that have a
 * code and a nameable system, in their order, as CWE.1-3 and CWE.4-6 (versions in CWE.7/8), and
 * the concept's text as CWE.9 (original text).
 * @param concept - The concept.
 * @param ctx - The reply context.
 * @returns The CWE, or undefined when no coding can be sent.
 */
export function conceptToCwe(concept: CodeableConcept | undefined, ctx: MappingContext): Repetition | undefined {
  const triplets: { coding: Coding; name: string }[] = [];
  for (const coding of concept?.coding ?? []) {
    const code = coding.code?.trim();
    const name = code && coding.system ? codingSystemName(coding.system, ctx) : undefined;
    if (code && name && triplets.length < CWE_TRIPLETS) {
      triplets.push({ coding, name });
    }
  }
  if (!triplets.length) {
    return undefined;
  }
  const [first, second] = triplets;
  const triplet = (t: { coding: Coding; name: string } | undefined): string[] =>
    t ? [t.coding.code?.trim() ?? '', t.coding.display ?? '', t.name] : ['', '', ''];
  return [...triplet(first), ...triplet(second), first.coding.version ?? '', second?.coding.version ?? '', concept?.text ?? ''];
}

/** FHIR name-use → HL7 table 0200 name type (the inverse of the inbound NAME_USE map). */
const NAME_TYPE: Partial<Record<NonNullable<HumanName['use']>, string>> = {
  official: 'L',
  usual: 'D',
  nickname: 'N',
  anonymous: 'S',
  maiden: 'M',
  old: 'C',
  temp: 'T',
};

/**
 * HumanName → XPN (the inverse of `xpnToHumanName`): family, first given name, further given
 * names, suffix, prefixes, further suffixes (degree), name type.
 * @param name - The name.
 * @returns The XPN, or undefined when it has neither a family nor a given name.
 */
export function humanNameToXpn(name: HumanName): Repetition | undefined {
  const family = name.family?.trim() ?? '';
  const given = (name.given ?? []).map((g) => g.trim()).filter(Boolean);
  if (!family && !given.length) {
    return undefined;
  }
  const suffix = (name.suffix ?? []).map((s) => s.trim()).filter(Boolean);
  const prefix = (name.prefix ?? []).map((p) => p.trim()).filter(Boolean);
  return [family, given[0] ?? '', given.slice(1).join(' '), suffix[0] ?? '', prefix.join(' '), suffix.slice(1).join(' '), name.use ? (NAME_TYPE[name.use] ?? '') : ''];
}

/** The identifier system of US National Provider Identifiers. */
export const US_NPI = 'http://hl7.org/fhir/sid/us-npi';

/**
 * Practitioner → XCN (ORC-12, OBR-16; the inverse of `xcnToPractitioner`): the NPI (else the
 * first identifier an HD can name) as XCN.1 with XCN.9 assigning authority and XCN.13 type,
 * the official (else first) name as XCN.2-XCN.7.
 * @param practitioner - The practitioner.
 * @param ctx - The reply context.
 * @param config - The mapping configuration.
 * @returns The XCN, or undefined when the practitioner has neither an identifier nor a name.
 */
export function practitionerToXcn(practitioner: Practitioner | undefined, ctx: MappingContext, config: MappingConfig): Repetition | undefined {
  if (!practitioner) {
    return undefined;
  }
  const candidates = [...(practitioner.identifier ?? [])].sort((a, b) => Number(b.system === US_NPI) - Number(a.system === US_NPI));
  let id: { value: string; hd: HierarchicDesignator; typeCode: string } | undefined;
  for (const identifier of candidates) {
    const value = identifier.value?.trim();
    const typeCode = identifierTypeCode(identifier) || (identifier.system === US_NPI ? 'NPI' : '');
    // The inbound map scopes an XCN without authority by XCN.13, else PRN.
    const hd = value && identifier.system ? assigningAuthority(identifier.system, typeCode || 'PRN', ctx, config) : undefined;
    if (value && hd) {
      id = { value, hd, typeCode };
      break;
    }
  }
  const names = practitioner.name ?? [];
  const name = names.find((n) => n.use === 'official') ?? names[0];
  const xpn = name ? humanNameToXpn({ ...name, use: undefined }) : undefined;
  if (!id && !xpn) {
    return undefined;
  }
  // XCN.2-XCN.7 are XPN.1-XPN.6 (family, given, second given, suffix, prefix, degree).
  const nameParts: Component[] = xpn ? xpn.slice(0, 6) : [];
  while (nameParts.length < 6) {
    nameParts.push('');
  }
  return [id?.value ?? '', ...nameParts, '', id ? hdSubcomponents(id.hd) : '', '', '', '', id?.typeCode ?? ''];
}
