// weightsoup's kernels. JavaScript owns and sizes the memory: it places inputs, outputs and the tile
// scratch above __heap_base and passes pointers and counts. Nothing here allocates, reads files or
// touches strings.

export function heapBase(): usize {
  return __heap_base;
}

export { decode, encode, quantize } from "./convert";
export { setScratch } from "./tile";
export { weightedSum } from "./blend";
export { slerpStats, countNonFinite } from "./reduce";
export { taskVectorMerge, maskedL1 } from "./taskvector";
export { diagnoseStage } from "./diagnose";
export { absDeltaSample, absDeltaRange, absDeltaRanges, keyRange, nonzeroBuckets } from "./select";
export { assignMin, prepareCosts } from "./assignment";
export { accumulateProduct } from "./gemm";
export { linear, linearKN } from "./matmul";
export { addBias, crossEntropy } from "./evaluate";
export { rmsNorm, layerNorm, addRowVector, addInPlace, rope, attention, siluMul, geluTanh } from "./transformer";
export { scoreReset, scoreChunk } from "./scoring";
export { linear, linearKN } from "./matmul";
export { dellaFiberScratchBytes, dellaMask, dellaMaskFibers, dellaWorkBytes } from "./della";
export { ramCounts, ramMerge } from "./ram";
export { sceVariance, sceSample, sceCollect, sceSelectCandidates, sceRange, sceSquares, sceMerge } from "./sce";
export { gramTiles, gramRows, gramColumns, combine, nearswap } from "./geometry";
export { fusionRowKL, fusionRange, fusionMerge } from "./fusion";
export { deltaRows, sumSquares, fillRandom, transposeInto, copyBlock, householderBasis, jacobiSvd, loraFactors, addScaledInPlace } from "./svd";
export { scalarSin, scalarCos, scalarAcos, scalarExp, scalarLog, scalarPow, ropeTables, sampleSoftmax } from "./scalar-math";
