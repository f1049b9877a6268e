import type { ClientApplication } from '@medplum/fhirtypes';
import { buildBots } from '../bots/build.ts';
import { writeMedplumConfig } from '../deploy/config-file.ts';
import type { DeployProgress, DeployReport } from '../deploy/deploy.ts';
import { deploy, isNoop } from '../deploy/deploy.ts';
import { findManaged } from '../deploy/managed.ts';
import { loadDesiredState } from '../deploy/manifest.ts';
import type { ProjectSecretsReport } from '../deploy/project-secrets.ts';
import { applyProjectSecrets, loadSecretDeclarations } from '../deploy/project-secrets.ts';
import type { Target, TargetOptions } from '../deploy/target.ts';
import { connectTarget } from '../deploy/target.ts';
import type { ProgressSettings } from './progress.ts';
import { createProgress, logAbove } from './progress.ts';

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
  /** Where the running count of resources and bots goes (default: stderr). */
  readonly progress?: ProgressSettings;
}

/** Result of {@link runDeploy}: the managed resources' report and the project secrets' report. */
export interface RunDeployReport extends DeployReport {
  /** Declared project secrets and what was (or would be) done to each; names only. */
  readonly secrets: ProjectSecretsReport;
}

/**
 * Builds the bots, loads the desired state and deploys it to a target (or prints the plan): the
 * managed resources and bots first, then the project secrets declared in `project-secrets.json`,
 * with their values from the environment.
 * @param target - A connected target, or the options to connect.
 * @param options - Root folder, dry run, environment, output.
 * @returns The report.
 */
export async function runDeploy(target: Target | TargetOptions, options: RunDeployOptions): Promise<RunDeployReport> {
  if (!options.skipBuild) {
    await buildBots(options.root);
  }
  const env = options.env ?? process.env;
  // Both declarations are read before anything is applied, so an invalid file changes nothing.
  const desired = await loadDesiredState(options.root);
  const declarations = await loadSecretDeclarations(options.root);
  const connected = 'client' in target ? target : await connectTarget(target);
  options.log(`${options.dryRun ? 'Plan for' : 'Deploying to'} ${connected.baseUrl} (project ${connected.projectId}): ${desired.resources.length} managed resources`);
  const progress = createProgress({ label: options.dryRun ? 'deploy plan' : 'deploy', total: desired.resources.length, ...options.progress });
  const log = logAbove(progress, options.log);
  const finish = (bots: DeployProgress['bots']): void => progress.done(`${bots.done}/${bots.total} bot(s)`);
  let resources: DeployReport;
  try {
    resources = await deploy(connected, desired, {
      dryRun: options.dryRun,
      env,
      log,
      onProgress: (step) => {
        if (step.current) {
          progress.note(describeStep(step));
          return;
        }
        progress.tick(1);
        if (step.done === step.total) {
          // Ended before the agents reload: what they log (a runtime sharing this output) must
          // not land on the live line.
          finish(step.bots);
        }
      },
    });
  } catch (err) {
    progress.done('stopped');
    throw err;
  }
  finish({ done: resources.entries.filter((e) => e.code).length, total: resources.entries.filter((e) => e.code).length });
  for (const agent of resources.reloadedAgents) {
    options.log(`${options.dryRun ? 'would reload' : 'reloaded'} ${agent} configuration`);
  }
  for (const warning of resources.warnings) {
    options.log('warning: ' + warning);
  }
  const secrets = await applyProjectSecrets(connected, declarations, { dryRun: options.dryRun, env, log: options.log });
  const report: RunDeployReport = { ...resources, secrets };
  options.log(isNoop(report) && !secrets.changed ? 'No changes.' : summarize(report));
  if (options.writeConfig && !options.dryRun) {
    await writeMedplumConfig(options.root, report.bots);
    options.log('Wrote medplum.config.json (bot ids for this target)');
  }
  return report;
}

/**
 * @param step - A resource starting.
 * @returns The progress note: its key, and for a bot its position among the bots.
 */
function describeStep(step: DeployProgress): string {
  const current = step.current as NonNullable<DeployProgress['current']>;
  return current.bot ? `${current.key} (bot ${step.bots.done + 1}/${step.bots.total})` : current.key;
}

function summarize(report: RunDeployReport): string {
  const count = (action: string): number => report.entries.filter((e) => e.action === action).length;
  const deployed = report.entries.filter((e) => e.code?.action === 'deploy').length;
  const verb = report.dryRun ? 'Would' : 'Did';
  const secrets = report.secrets.entries.filter((e) => e.action === 'set' || e.action === 'changed').length;
  const secretsPart = secrets ? `; ${secrets} project secret(s) set or changed` : '';
  return `${verb} create ${count('create')}, update ${count('update')}, leave ${count('unchanged')} unchanged; ${deployed} bot bundle(s) deployed${secretsPart}.`;
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
