"""What the model servers ChatWait reaches over HTTP share, whichever API they speak: the client
(`client`: the httpx client, headers, the POST, the check), the streamed reply's frame
(`stream`), what their failures mean (`errors`) and the token counts (`tokens`)."""
