"""The Ray actors: PartitionActor (data), TopicManager (metadata). Thin shells over pure code."""
