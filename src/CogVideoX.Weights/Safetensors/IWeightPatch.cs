using CogVideoX.Engine;

namespace CogVideoX.Weights;

/// <summary>
/// Changes some checkpoint tensors as they are read (LoRA adapters fused into the weights they adapt). A
/// <see cref="WeightScope"/> reading through a patch hands each tensor the patch changes to <see cref="Apply"/> in
/// float32 on the loading backend, and rounds the result once to the dtype the tensor is held in. Every way a model
/// loads — whole onto a device, packed into host images for streaming — reads through its scope, so each gets the
/// patched tensors.
/// </summary>
public interface IWeightPatch
{
    /// <summary>Whether the tensor of this full checkpoint name is changed.</summary>
    bool Changes(string name);

    /// <summary>
    /// The changed tensor, float32 on <paramref name="stored"/>'s backend (a new tensor the caller owns), from the
    /// stored one read as float32 (borrowed).
    /// </summary>
    Tensor Apply(string name, Tensor stored);
}
