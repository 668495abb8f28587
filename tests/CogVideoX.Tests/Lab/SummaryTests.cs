using CogVideoX.Lab.Report;

namespace CogVideoX.Tests.Lab;

public class SummaryTests
{
    [Theory]
    [InlineData(100, 310, "raised sharpness 3.1×")]
    [InlineData(100, 120, "raised sharpness 20%")]
    [InlineData(50, 44, "lowered sharpness 12%")]
    [InlineData(90, 30, "lowered sharpness 3.0×")]
    [InlineData(100, 1500, "raised sharpness 15×")]
    [InlineData(0, 12.5, "raised sharpness from 0 to 12.5")]
    public void ChangesAreWordedAsPeopleSayThem(double from, double to, string expected) =>
        Assert.Equal(expected, Summary.Change("sharpness", from, to)!.Value.Phrase);

    [Fact]
    public void SmallChangesAreNotFindings()
    {
        Assert.Null(Summary.Change("flicker", 100, 102));
        Assert.Null(Summary.Change("flicker", 0, 0));
        // Larger effects rank higher, whichever their direction.
        Assert.True(Summary.Change("x", 100, 400)!.Value.Size > Summary.Change("x", 100, 50)!.Value.Size);
        Assert.Equal(Summary.Change("x", 100, 400)!.Value.Size, Summary.Change("x", 400, 100)!.Value.Size, 9);
    }
}
