import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { buildBots } from './bots/build.ts';
import { runBootstrap } from './commands/bootstrap.ts';
import { findManagedClient, runDeploy } from './commands/deploy.ts';
import { runHl7Command } from './commands/hl7.ts';
import { runMetriportCommand } from './commands/metriport.ts';
import { runPartnersCommand } from './commands/partners.ts';
import { runTraceCommand } from './commands/trace.ts';
import { runStatusCommand } from './commands/status.ts';
import { LAB_ORDER_TASK_CODE } from './outbound/lab-orders.ts';
import { describeRuntime, startHub } from './commands/start.ts';
import { initDockerEnv } from './deploy/env-file.ts';
import { hideValues } from './fhir/strings.ts';
import { targetFromEnv } from './deploy/target.ts';

const USAGE = `Usage: hub <command>

  start                 run the hub locally (local runtime on 127.0.0.1:$HUB_PORT, default 8103)
  build                 bundle every bot under bots/ into dist/bots/
  deploy [--dry-run] [--no-write-config]
                        apply the hub's managed resources and bots to $MEDPLUM_BASE_URL
  bootstrap             prepare a fresh stock stack with super-admin credentials, then deploy
  client-secret <name>  print the id and secret of a managed ClientApplication on the target
  hl7 stats [--since <ISO date>]
                        HL7 messages received per sender and in total, by outcome (ledger)
  hl7 dead-letters [--limit N]
                        list open dead letters (ids, sender, type, control id, error; no PHI)
  hl7 replay <MessageHeader id ...> | --all [--no-wait] [--timeout <s>] [--parallel <n>]
                        replay dead letters (one replay Task each) and wait for their outcome
  hl7 import <file> [--parallel N] [--channel <name>]
                        send an HL7 batch file's messages through the inbound pipeline (ACK summary)
  metriport webhook-url | tasks [--failed] [--limit N] | redrive <Task id ...>
                        the Metriport webhook URL to configure; received messages and their
                        outcome; process recorded messages again
  partners deliveries [--dead-letter] [--limit N] | replay <Task id ...> [--window-hours H]
                        deliveries to partners and their dead-letter; send dead letters again
  labs deliveries [--dead-letter] [--limit N] | replay <Task id ...> [--window-hours H]
                        orders to labs and their dead-letter; send dead letters again
  status [--json] [--since <ISO date>] [--bucket-minutes N] [--buckets N]
                        per channel (HL7 sender, Metriport, SFTP source, partner, lab): counts by
                        state, oldest pending, last error, throughput per hour, open dead letters
  status --serve [--port N]
                        the status page on 127.0.0.1 against $MEDPLUM_BASE_URL (log in with a
                        ClientApplication id and secret)
  trace <message-id|resource> [--json]
                        follow an ingestion end to end: ledger entry or file or Metriport message,
                        the resources written, the runs and partner/lab deliveries they caused
                        (or, from a resource, the messages that wrote it); no PHI
  env:init              create or complete .env for the Docker stack (generated secrets)
`;

/**
 * The `hub` command.
 * @param argv - Arguments after the script name.
 * @returns The exit code.
 */
async function main(argv: string[]): Promise<number> {
  const root = process.cwd();
  if (existsSync(join(root, '.env'))) {
    process.loadEnvFile(join(root, '.env'));
  }
  const log = (line: string): void => console.log(line);
  const output = { log, error: (line: string): void => console.error(line) };
  const [command, ...args] = argv;
  switch (command) {
    case 'start': {
      const runtime = await startHub({ root, env: process.env, log, version: packageVersion(root) });
      describeRuntime(runtime).forEach((line) => log(line));
      await waitForSignal();
      log('Stopping...');
      await runtime.stop();
      return 0;
    }
    case 'build': {
      const manifest = await buildBots(root);
      manifest.bots.forEach((bot) => log(`built ${bot.dist}  ${bot.version}`));
      return 0;
    }
    case 'deploy': {
      const target = targetFromEnv(process.env);
      if (typeof target === 'string') {
        console.error(target);
        return 2;
      }
      const dryRun = args.includes('--dry-run');
      const writeConfig = !args.includes('--no-write-config');
      await runDeploy(target, { root, dryRun, writeConfig, env: process.env, log });
      return 0;
    }
    case 'bootstrap': {
      await runBootstrap({ root, env: process.env, log });
      return 0;
    }
    case 'client-secret': {
      const target = targetFromEnv(process.env);
      if (typeof target === 'string' || !args[0]) {
        console.error(typeof target === 'string' ? target : 'Usage: hub client-secret <managed ClientApplication name>');
        return 2;
      }
      const client = await findManagedClient(target, args[0]);
      log(`client id:     ${client.id}`);
      log(`client secret: ${client.secret}`);
      return 0;
    }
    case 'hl7': {
      return runHl7Command(targetFromEnv(process.env), args, output);
    }
    case 'metriport': {
      return runMetriportCommand(targetFromEnv(process.env), args, output);
    }
    case 'partners': {
      return runPartnersCommand(targetFromEnv(process.env), args, output);
    }
    case 'labs': {
      return runPartnersCommand(targetFromEnv(process.env), args, output, LAB_ORDER_TASK_CODE);
    }
    case 'status': {
      return runStatusCommand(targetFromEnv(process.env), args, { ...output, env: process.env });
    }
    case 'trace': {
      return runTraceCommand(targetFromEnv(process.env), args, output);
    }
    case 'env:init': {
      const result = await initDockerEnv(join(root, '.env'));
      log(`.env: created ${result.created.length ? result.created.join(', ') : 'nothing'}; kept ${result.kept.length} existing values`);
      return 0;
    }
    default:
      console.error(USAGE);
      return command ? 2 : 0;
  }
}

function packageVersion(root: string): string {
  return (JSON.parse(readFileSync(join(root, 'package.json'), 'utf8')) as { version: string }).version;
}

function waitForSignal(): Promise<void> {
  return new Promise((resolve) => {
    process.once('SIGINT', () => resolve());
    process.once('SIGTERM', () => resolve());
  });
}

main(process.argv.slice(2)).then(
  (code) => process.exit(code),
  (err: unknown) => {
    // A server error may quote a stored value: the values are hidden, the text kept.
    console.error(hideValues(err instanceof Error ? err.message : String(err)));
    process.exit(1);
  }
);
