// A scoring service for models trained with Microsoft.ML.DeepExtensions (or any ML.NET model):
//   dotnet run -c Release --project examples/ScoringService -- --Model:Path=model.zip --urls=http://127.0.0.1:5080
//   curl -s localhost:5080/health
//   curl -s -X POST localhost:5080/predict -H 'Content-Type: application/json' -d '{"Features":[0.1, ...]}'
ScoringService.ScoringApp.Create(args).Run();
