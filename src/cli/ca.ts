/** `kiln ca export`: the certificate clients must trust for HTTPS interception (created on first use). */
import type { Command } from "commander";
import { DEFAULT_CA_DIR } from "../common/defaults.js";
import { CertificateAuthority } from "../peer/proxy/ca.js";

export function registerCaCommand(program: Command): void {
  const ca = program.command("ca").description("kiln's certificate authority for HTTPS interception (kiln peer --proxy-intercept)");
  ca.command("export")
    .description("print the CA certificate (PEM), creating the CA (key mode 0600) if there is none yet")
    .option("--ca-dir <dir>", "the CA's directory: the same as the peer's --ca-dir", DEFAULT_CA_DIR)
    .action(async (f: { caDir: string }) => {
      const authority = await CertificateAuthority.loadOrCreate(f.caDir);
      process.stdout.write(authority.certPem);
      process.stderr.write(
        [
          `# CA in ${f.caDir}. Trust it where clients pull through the peer, e.g.:`,
          "#   system (Docker, containerd): cp kiln-ca.crt /usr/local/share/ca-certificates/ && update-ca-certificates",
          "#   Podman / skopeo, per registry: /etc/containers/certs.d/<registry>/kiln-ca.crt",
          "",
        ].join("\n"),
      );
    });
}
