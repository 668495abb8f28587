namespace CogVideoX.Engine;

public sealed unsafe partial class CpuBackend
{
    public void Linear(Tensor x, Tensor weight, Tensor? bias, Activation activation, Tensor y)
    {
        // Float32 views are read through their strides by the packers (a transposed weight costs nothing).
        using var xf = F32View(x);
        using var wf = F32View(weight);
        using var bf = bias is null ? null : F32(bias);
        int m = xf.Dim(0), k = xf.Dim(1), n = wf.Dim(0);
        var a = new StridedMatrix(Ptr<float>(xf), xf.Layout.Stride(0), xf.Layout.Stride(1));
        // B [k, n] = weightᵀ.
        var b = new StridedMatrix(Ptr<float>(wf), wf.Layout.Stride(1), wf.Layout.Stride(0));
        var epilogue = new GemmEpilogue(bf is null ? null : Ptr<float>(bf), null, activation);
        bool fewRows = m <= Gemm.FewRows && xf.Layout.Stride(1) == 1 && wf.Layout.Stride(1) == 1;
        float* xp = Ptr<float>(xf);
        float* wp = Ptr<float>(wf);
        long xRow = xf.Layout.Stride(0), wRow = wf.Layout.Stride(0);
        WriteF32(y, ys =>
        {
            fixed (float* yp = ys)
            {
                if (fewRows) Gemm.MultiplyFewRows(xp, xRow, wp, wRow, yp, n, m, n, k, epilogue);
                else Gemm.Multiply(a, b, yp, n, m, n, k, epilogue);
            }
        });
    }

    public void MatMul(Tensor a, Tensor b, Tensor y)
    {
        int rank = y.Rank, m = y.Dim(-2), n = y.Dim(-1), k = a.Dim(-1);
        long batch = y.ElementCount / ((long)m * n);
        using var af = F32View(a);
        using var bf = F32View(b);
        var batchShape = y.ShapeArray()[..^2];
        long aRow = af.Layout.Stride(-2), aCol = af.Layout.Stride(-1);
        long bRow = bf.Layout.Stride(-2), bCol = bf.Layout.Stride(-1);
        float* ap = Ptr<float>(af);
        float* bp = Ptr<float>(bf);
        var aBatchStrides = af.Layout.StridesArray()[..^2];
        var bBatchStrides = bf.Layout.StridesArray()[..^2];
        var kind = Gemm.Current;
        WriteF32(y, ys =>
        {
            fixed (float* yp0 = ys)
            {
                float* yp = yp0;
                void One(long i, bool parallel)
                {
                    // Batch dims may be broadcast (stride 0) or permuted: walk them through the strides.
                    long rem = i, ao = 0, bo = 0;
                    for (int d = rank - 3; d >= 0; d--)
                    {
                        long idx = rem % batchShape[d];
                        rem /= batchShape[d];
                        ao += idx * aBatchStrides[d];
                        bo += idx * bBatchStrides[d];
                    }
                    Gemm.Multiply(new StridedMatrix(ap + ao, aRow, aCol), new StridedMatrix(bp + bo, bRow, bCol),
                        yp + i * m * n, n, m, n, k, default, parallel, kind);
                }
                // Many small products run one per thread; few large ones each use all threads.
                if (batch >= 2 * Threads)
                    ParallelRange(batch, 1, (s, e) =>
                    {
                        for (long i = s; i < e; i++) One(i, false);
                    });
                else
                    for (long i = 0; i < batch; i++) One(i, true);
            }
        });
    }
}
