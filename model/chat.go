package model

import "strings"

// Message is one turn of a chat.
type Message struct {
	Role, Content string
}

// ChatStop is where an answer generated from ChatPrompt ends: the start of the next turn.
const ChatStop = "<|"

// ChatOpen ends every ChatPrompt: the assistant's turn, open for the model to write.
const ChatOpen = "<|assistant|>\n"

// ChatPrompt renders a chat in the template the project's models are trained on:
//
//	<|system|>
//	You are...
//	<|user|>
//	Hello
//	<|assistant|>
//
// ending with the assistant's turn open (ChatOpen). Roles other than system, user and assistant
// are written as user turns.
func ChatPrompt(msgs []Message) string {
	var b strings.Builder
	for _, m := range msgs {
		b.WriteString(ChatTurn(m))
	}
	b.WriteString(ChatOpen)
	return b.String()
}

// ChatTurn renders one message as ChatPrompt writes it, so a caller can build (and bound) a
// prompt a turn at a time.
func ChatTurn(m Message) string {
	role := m.Role
	switch role {
	case "system", "user", "assistant":
	default:
		role = "user"
	}
	return "<|" + role + "|>\n" + m.Content + "\n"
}
