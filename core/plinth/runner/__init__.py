"""The model runner side of a step: input preparation, the forward pass and sampling."""
