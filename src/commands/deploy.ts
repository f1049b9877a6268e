import type { ClientApplication } from '@medplum/fhirtypes';
import { buildBots } from '../bots/build.ts';
import { writeMedplumConfig } from '../deploy/config-file.ts';
import type { DeployReport } from '../deploy/deploy.ts';
import { deploy, isNoop } from '../deploy/deploy.ts';
import { findManaged } from '../deploy/managed.ts';
import { loadDesiredState } from '../deploy/manifest.ts';
import type { Target, TargetOptions } from '../deploy/target.ts';
import { connectTarget } from '../deploy/target.ts';

/** Options of {@link runDeploy}. */
export interface RunDeployOptions {
  readonly root: string;
  readonly dryRun: boolean;
  /** Write `medplum.config.json` with the target's bot ids (not for the local runtime's self-deploy). */
  readonly writeConfig: boolean;
  /** Skip the bot build (the caller just built). */
  readonly skipBuild?: boolean;
  readonly env?: NodeJS.ProcessEnv;
  readonly log: (line: string) => void;
}

/**
 * Builds the bots, loads the desired state and deploys it to a target (or prints the plan).
 * @param target - A connected target, or the options to connect.
 * @param options - Root folder, dry run, output.
 * @returns The report.
 */
export async function runDeploy(target: Target | TargetOptions, options: RunDeployOptions): Promise<DeployReport> {
  if (!options.skipBuild) {
    await buildBots(options.root);
  }
  const connected = 'client' in target ? target : await connectTarget(target);
  const desired = await loadDesiredState(options.root);
  options.log(`${options.dryRun ? 'Plan for' : 'Deploying to'} ${connected.baseUrl} (project ${connected.projectId}): ${desired.resources.length} managed resources`);
  const report = await deploy(connected, desired, { dryRun: options.dryRun, env: options.env, log: options.log });
  for (const agent of report.reloadedAgents) {
    options.log(`${options.dryRun ? 'would reload' : 'reloaded'} ${agent} configuration`);
  }
  for (const warning of report.warnings) {
    options.log('warning: ' + warning);
  }
  options.log(isNoop(report) ? 'No changes.' : summarize(report));
  if (options.writeConfig && !options.dryRun) {
    await writeMedplumConfig(options.root, report.bots);
    options.log('Wrote medplum.config.json (bot ids for this target)');
  }
  return report;
}

function summarize(report: DeployReport): string {
  const count = (action: string): number => report.entries.filter((e) => e.action === action).length;
  const deployed = report.entries.filter((e) => e.code?.action === 'deploy').length;
  const verb = report.dryRun ? 'Would' : 'Did';
  return `${verb} create ${count('create')}, update ${count('update')}, leave ${count('unchanged')} unchanged; ${deployed} bot bundle(s) deployed.`;
}


/**
 * Finds a managed ClientApplication on the target (to hand its secret to whoever runs it, such as
 * the on-prem agent).
 * @param target - Target options.
 * @param name - The managed name (its file name under agent-config/ or access-policies/).
 * @returns The ClientApplication, secret included.
 */
export async function findManagedClient(target: TargetOptions, name: string): Promise<ClientApplication> {
  const { client } = await connectTarget(target);
  const [found] = await findManaged(client, 'ClientApplication', name);
  if (!found) {
    throw new Error(`No managed ClientApplication named ${name} on ${target.baseUrl}`);
  }
  return found;
}
