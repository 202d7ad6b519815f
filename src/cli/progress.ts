/**
 * @file The progress bar the CLI draws on stderr: tensors, bytes, rate and time left, redrawn in place
 * on a terminal (at most ten times a second) and as an occasional plain line otherwise.
 */
import type { MergeEvent } from "../events";
import { formatBytes, formatSeconds, timeLeft } from "../units";
import { nowMs } from "../clock";

export class ProgressBar {
  private started = nowMs();
  private lastDraw = 0;
  private tensors = 0;
  private tensorsTotal = 0;
  private bytes = 0;
  private bytesTotal = 0;
  private drawn = false;

  constructor(private readonly stream: NodeJS.WriteStream, private readonly interactive = stream.isTTY === true) {}

  update(e: MergeEvent): void {
    if (e.type === "warning") {
      this.finish();
      printWarning(this.stream, e.message, false);
      return;
    }
    if (e.type === "stage") {
      // A multi-stage recipe: one line per stage, then that stage's own bar.
      this.finish();
      this.stream.write(`stage ${e.index + 1}/${e.stages}${e.name === undefined ? "" : ` "${e.name}"`}: ${e.method}\n`);
      this.tensors = 0;
      this.bytes = 0;
      return;
    }
    if (e.type === "plan") {
      this.started = nowMs();
      this.tensorsTotal = e.tensors;
      this.bytesTotal = e.inputBytes;
    } else if (e.type === "progress") {
      this.bytes = e.bytesDone;
    } else if (e.type === "tensor-done") {
      this.tensors = e.tensorsDone;
      this.bytes = e.bytesDone;
    } else {
      return;
    }
    const now = nowMs();
    const final = this.tensorsTotal > 0 && this.tensors === this.tensorsTotal;
    if (!final && now - this.lastDraw < (this.interactive ? 100 : 5000)) return;
    this.lastDraw = now;
    this.draw(now);
  }

  private draw(now: number): void {
    const seconds = (now - this.started) / 1000;
    const fraction = this.bytesTotal > 0 ? this.bytes / this.bytesTotal : 0;
    const rate = seconds > 0 ? this.bytes / seconds : 0;
    const width = 24;
    const filled = Math.round(fraction * width);
    const line = `[${"#".repeat(filled)}${"-".repeat(width - filled)}] ${this.tensors}/${this.tensorsTotal} tensors  ` +
      `${formatBytes(this.bytes)}/${formatBytes(this.bytesTotal)}${rate > 0 ? `  ${formatBytes(rate)}/s` : ""}${etaText(seconds, fraction)}`;
    if (this.interactive) {
      this.stream.write(`\r${line}\x1b[K`);
      this.drawn = true;
    } else {
      this.stream.write(line + "\n");
    }
  }

  /** Ends the redrawn line. */
  finish(): void {
    if (this.interactive && this.drawn) this.stream.write("\n");
    this.drawn = false;
  }
}

/** A warning on a line of its own (`clearLine`: over a progress line redrawn in place). --quiet silences progress, never warnings. */
export function printWarning(stream: NodeJS.WriteStream, message: string, clearLine: boolean): void {
  stream.write(`${clearLine ? "\r\x1b[K" : ""}weightsoup: warning: ${message}\n`);
}

/** "  ETA 10s" once the time left means something (see timeLeft), else nothing. */
export function etaText(seconds: number, fraction: number): string {
  const left = timeLeft(seconds, fraction);
  return left === undefined ? "" : `  ETA ${formatSeconds(left)}`;
}
