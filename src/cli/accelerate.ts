/**
 * `kiln accelerate enable|get|create|delete|disable`: image acceleration (seed
 * ucloud-image-acceleration). State lives on the shared directory itself, so any node
 * or builder that mounts it runs these commands; each prints the `get` answer as JSON.
 */
import type { Command } from "commander";
import { resolve } from "node:path";
import type { AccelerateView } from "../api/accelerate.js";
import { SNAPSHOTTER } from "../common/defaults.js";
import { createLogger } from "../common/logger.js";
import * as accelerate from "../accelerate/service.js";
import { parseUrl } from "./options.js";
import { fail } from "./token.js";

interface Common {
  shared: string;
}

function print(view: AccelerateView): void {
  process.stdout.write(`${JSON.stringify(view, null, 2)}\n`);
}

function command(parent: Command, name: string, description: string) {
  return parent.command(name).description(description).option("--shared <dir>", "the shared directory (NFS) every node mounts", SNAPSHOTTER.shared);
}

export function registerAccelerateCommand(program: Command): void {
  const acc = program.command("accelerate").description("image acceleration: layers unpacked once on shared storage, mounted by kiln's containerd snapshotter");
  command(acc, "enable", "check the shared directory is mounted and writable, and turn acceleration on").action(async (f: Common) => {
    try {
      const view = await accelerate.enable(resolve(f.shared));
      if (!view.AgentReady) process.stderr.write("no node's snapshotter has reported yet (kiln snapshotter --shared ...): AgentReady is false\n");
      print(view);
    } catch (err) {
      fail("accelerate enable", err);
    }
  });
  command(acc, "get", "print the state: Enable, NfsReady, AgentReady, Status, Error, Images").action(async (f: Common) => {
    try {
      print(await accelerate.getView(resolve(f.shared)));
    } catch (err) {
      fail("accelerate get", err);
    }
  });
  command(acc, "create", "unpack <original> onto the shared directory and push the target image (default <original>-acc)")
    .argument("<original>", "the image to accelerate, e.g. registry.example.com/team/app:v1")
    .argument("[target]", "the target image's name (default: the original's tag with -acc)")
    .option("--plain-http", "the registry speaks plain HTTP")
    .option("--mirror <url>", "fetch layers through this kiln peer's proxy (P2P), e.g. http://127.0.0.1:4001", parseUrl)
    .option("--platform <os/arch>", "platform to pick from a multi-arch image (default linux/amd64)")
    .option("--username <name>", "registry username (password from KILN_REGISTRY_PASSWORD)")
    .action(
      async (original: string, target: string | undefined, f: Common & { plainHttp?: boolean; mirror?: string; platform?: string; username?: string }) => {
        try {
          const log = createLogger("accelerate");
          const view = await accelerate.create({
            original,
            target,
            shared: resolve(f.shared),
            plainHttp: f.plainHttp,
            mirror: f.mirror,
            platform: f.platform,
            username: f.username,
            password: process.env.KILN_REGISTRY_PASSWORD,
            log,
          });
          print(view);
        } catch (err) {
          fail("accelerate create", err);
        }
      },
    );
  command(acc, "delete", "remove an accelerated image's layers from the shared directory (refused while a node uses them)")
    .argument("<original>", "the original image's name")
    .option("--force", "delete even while nodes use the layers (their containers get I/O errors)")
    .action(async (original: string, f: Common & { force?: boolean }) => {
      try {
        print(await accelerate.remove(resolve(f.shared), original, f.force));
      } catch (err) {
        fail("accelerate delete", err);
      }
    });
  command(acc, "disable", "turn acceleration off (refused while nodes use accelerated images)")
    .option("--force", "disable even while nodes use accelerated layers")
    .action(async (f: Common & { force?: boolean }) => {
      try {
        print(await accelerate.disable(resolve(f.shared), f.force));
      } catch (err) {
        fail("accelerate disable", err);
      }
    });
}
