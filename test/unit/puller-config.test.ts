/**
 * The Image Puller's configuration read as kiln reads it (IMAGES, CACHING_INTERVAL_HOURS,
 * NODE_SELECTOR, the keys it ignores), and node labels as key=value lines.
 */
import { describe, it } from "node:test";
import assert from "node:assert/strict";
import { CreatePullScheduleBody, MAX_PULL_IMAGES, parseImagesList } from "../../src/api/puller.js";
import { scheduleFromImagePuller } from "../../src/cli/image-puller-config.js";
import { labelLines, parseLabelLines } from "../../src/cli/node-location.js";

describe("the Image Puller's configuration", () => {
  it("IMAGES: NAME=IMAGE pairs with spaces and a trailing ';', in order", () => {
    assert.deepEqual(parseImagesList(" java11-maven=quay.io/eclipse/che-java11-maven:nightly ; theia=quay.io/eclipse/che-theia:next;"), [
      { name: "java11-maven", image: "quay.io/eclipse/che-java11-maven:nightly" },
      { name: "theia", image: "quay.io/eclipse/che-theia:next" },
    ]);
    assert.throws(() => parseImagesList("a=b;broken"), /entry 2 \("broken"\) is not NAME=IMAGE/);
    assert.throws(() => parseImagesList("a=has space"), /entry 1 .*must be an image reference/);
  });

  it("IMAGES: the same limit as the array form, and no reference ctr would read as an option", () => {
    const list = (n: number) => Array.from({ length: n }, (_, i) => `i${i}=r/x:${i}`).join(";");
    assert.equal(parseImagesList(list(MAX_PULL_IMAGES)).length, MAX_PULL_IMAGES);
    assert.throws(
      () => parseImagesList(list(MAX_PULL_IMAGES + 1)),
      new RegExp(`^Error: at most ${MAX_PULL_IMAGES} images in one schedule \\(${MAX_PULL_IMAGES + 1} given\\)$`),
    );
    assert.throws(() => parseImagesList("a=r/x:1;b=-k"), /^Error: entry 2 \("b=-k"\): image must not start with '-'/);
    const arrayForm = CreatePullScheduleBody.safeParse({
      name: "x",
      images: Array.from({ length: MAX_PULL_IMAGES + 1 }, (_, i) => ({ name: `i${i}`, image: "r/x:1" })),
    });
    assert.equal(arrayForm.error?.issues[0]?.message, `at most ${MAX_PULL_IMAGES} images in one schedule (${MAX_PULL_IMAGES + 1} given)`);
  });

  it("its defaults and the keys kiln has no use for, named with why", () => {
    const s = scheduleFromImagePuller({
      IMAGES: "app=registry:5000/team/app:v1",
      NODE_SELECTOR: "{}",
      CACHING_MEMORY_LIMIT: "20Mi",
      NAMESPACE: "k8s-image-puller",
    });
    assert.deepEqual(s.body, {
      name: "kubernetes-image-puller",
      images: [{ name: "app", image: "registry:5000/team/app:v1" }],
      interval_hours: 1,
      node_selector: {},
    });
    assert.deepEqual(
      s.ignored.map((l) => l.split(":")[0]),
      ["NAMESPACE", "CACHING_MEMORY_LIMIT"],
    );
  });

  it("refuses what would make a schedule that does nothing or the wrong thing, naming the key", () => {
    assert.throws(() => scheduleFromImagePuller({ IMAGES: "{}" }), /IMAGES lists no image/);
    assert.throws(
      () => scheduleFromImagePuller({ IMAGES: "a=r/x:1", CACHING_INTERVAL_HOURS: "often" }),
      /CACHING_INTERVAL_HOURS: "often" is not a positive number/,
    );
    assert.throws(() => scheduleFromImagePuller({ IMAGES: "a=r/x:1", NODE_SELECTOR: "zone=a" }), /NODE_SELECTOR: not JSON/);
    assert.throws(() => scheduleFromImagePuller({ IMAGES: "a=r/x:1", NODE_SELECTOR: '{"bad key!": "x"}' }), /NODE_SELECTOR: must be a label key/);
    assert.deepEqual(scheduleFromImagePuller({ IMAGES: "a=r/x:1", NODE_SELECTOR: '{"zone": "a"}', CACHING_INTERVAL_HOURS: "0.5" }).body.node_selector, {
      zone: "a",
    });
  });
});

describe("node labels as key=value lines", () => {
  it("round-trip; labels the inventory refuses are skipped with the reason; a bad line names its number", () => {
    const { lines, skipped } = labelLines({ zone: "a", "kubernetes.io/arch": "amd64", "bad key": "x", long: "v".repeat(64) });
    assert.deepEqual(lines, ["kubernetes.io/arch=amd64", "zone=a"]);
    assert.equal(skipped.length, 2);
    assert.deepEqual(parseLabelLines(`# from the node\n${lines.join("\n")}\n\n`), { "kubernetes.io/arch": "amd64", zone: "a" });
    assert.throws(() => parseLabelLines("zone=a\nnot a label"), /line 2: not key=value/);
    assert.throws(() => parseLabelLines("zone=a b"), /line 1: zone=a b: must be a label value/);
  });
});
